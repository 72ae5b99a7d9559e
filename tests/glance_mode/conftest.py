"""The import_glance tests against a real Glance 33 (issue 15): everything in this
folder is marked `glance`, which the normal runs deselect (pyproject's addopts) and
`make test-glance` selects, so Glance starts once per `make test`.

`glance` is one Glance for the module (tests/glance.py: PyPI's glance in its own
virtualenv, db_sync, uwsgi, SQLite, the file store, delayed delete on), filled through
its own API with an image in every status it can reach. Where Glance cannot be
installed, every test here skips with one line -- a failure with REQUIRE_GLANCE=1, as
in CI.
"""

from pathlib import Path

from tests.glance import missing
from tests.suites import folder_hooks

HERE = Path(__file__).resolve().parent

pytest_collection_modifyitems, pytest_runtest_setup = folder_hooks(
    HERE, "glance", missing, "REQUIRE_GLANCE"
)
