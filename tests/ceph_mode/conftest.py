"""The tests against a real Ceph (issue 14): everything in this folder is marked
`ceph`, which the normal runs deselect (pyproject's addopts) and `make test-ceph`
selects, so a cluster starts once per `make test`, not on each database pass.

`ceph` is a throwaway single-node cluster for the session (tests/ceph.py). Where
Debian's Ceph packages or the rados/rbd modules are missing, every test here skips
with one line saying so -- an error with REQUIRE_CEPH=1, as in CI.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ceph import Ceph, missing, running_ceph
from tests.suites import folder_hooks

HERE = Path(__file__).resolve().parent

pytest_collection_modifyitems, pytest_runtest_setup = folder_hooks(
    HERE, "ceph", missing, "REQUIRE_CEPH"
)


@pytest.fixture(scope="session")
def ceph() -> Iterator[Ceph]:
    with running_ceph() as cluster:
        yield cluster
