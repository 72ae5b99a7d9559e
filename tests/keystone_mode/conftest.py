"""The Keystone-mode tests (issue 12): everything in this folder is marked `keystone`,
which the normal runs deselect (pyproject's addopts) and `make test-keystone` selects,
so a real Keystone starts once per `make test`, not on each database pass.

`keystone` is a real Keystone for the session (tests/keystone.py); `cloud` is the cast
provisioned in it. Without the Keystone venv, every test here skips, with one line
saying how to build it -- an error with REQUIRE_KEYSTONE=1, as in CI.
"""

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

# The browser tests' chromium, launched the same way (the fixtures pytest-playwright's
# `page` asks for), and the same skip without it.
from tests.browser.conftest import (  # noqa: F401
    browser_context_args,
    browser_type_launch_args,
    skip_without_chromium,
)
from tests.keystone import Cloud, Keystone, provision, running_keystone, venv_problem
from tests.live import Registry, free_port, running_registry
from tests.suites import mark_folder, skip_unless_available

TOKEN_CACHE_SECONDS = 3

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items):
    mark_folder(items, HERE, "keystone")


def pytest_runtest_setup(item):
    skip_unless_available(venv_problem(), "REQUIRE_KEYSTONE")
    if "page" in item.fixturenames:
        skip_without_chromium()


@pytest.fixture(scope="session")
def keystone(tmp_path_factory) -> Iterator[Keystone]:
    with running_keystone(tmp_path_factory.mktemp("keystone")) as server:
        yield server


@pytest.fixture(scope="session")
def cloud(keystone) -> Cloud:
    """The cast of tests/keystone.py's CAST, with the image service's endpoints at a
    free port on loopback, for the registry to be started on."""
    return provision(keystone, registry_url=f"http://127.0.0.1:{free_port()}")


@pytest.fixture(scope="session")
def policy_file(tmp_path_factory) -> Path:
    """The registry's IMAGES_POLICY_FILE: no overrides until a test writes some (and
    puts it back); oslo.policy reads it again when it changes."""
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text("{}\n")
    return path


@pytest.fixture(scope="session")
def registry(cloud, policy_file, tmp_path_factory) -> Iterator[Registry]:
    """The registry in Keystone mode, where the catalog says the image service is,
    validating tokens as the `glance` service user; auth_token keeps a validated token
    for TOKEN_CACHE_SECONDS."""
    glance = cloud.users["glance"]
    env = {
        "KEYSTONE_AUTH_URL": cloud.keystone.url,
        "KEYSTONE_SERVICE_USER": glance.name,
        "KEYSTONE_SERVICE_PASSWORD": glance.password,
        "KEYSTONE_SERVICE_PROJECT": glance.project,
        "KEYSTONE_TOKEN_CACHE_SECONDS": str(TOKEN_CACHE_SECONDS),
        "IMAGES_POLICY_FILE": str(policy_file),
    }
    port = urlsplit(cloud.registry_url).port
    with running_registry(tmp_path_factory.mktemp("registry"), env=env, port=port) as server:
        yield server
