"""What the suites against a real outside service share (tests/keystone_mode,
tests/ceph_mode): every test in the folder gets the service's marker, which the
normal runs deselect (pyproject's addopts) and the service's own make target selects;
and one line says why they skip where the service cannot run -- a failure instead
when CI requires it (REQUIRE_<SERVICE>=1)."""

import os
from collections.abc import Callable
from pathlib import Path

import pytest


def mark_folder(items, folder: Path, marker: str) -> None:
    for item in items:
        if folder in Path(item.path).parents:
            item.add_marker(getattr(pytest.mark, marker))


def skip_unless_available(problem: str | None, required_by: str) -> None:
    # Called from pytest_runtest_setup rather than a fixture, so that pytest folds the
    # skips into one line (a fixture's skip is reported at each test's own line).
    if problem is None:
        return
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{problem} ({required_by}=1)", pytrace=False)
    pytest.skip(problem)


def folder_hooks(folder: Path, marker: str, problem: Callable[[], str | None], required_by: str):
    """A service folder's two conftest hooks: its marker on every test in it, and
    the skip (or REQUIRE_ failure) when `problem()` says the service cannot run.
    Bound in the conftest as
    `pytest_collection_modifyitems, pytest_runtest_setup = folder_hooks(...)`."""

    @pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
    def pytest_collection_modifyitems(items):
        mark_folder(items, folder, marker)

    def pytest_runtest_setup(item):
        skip_unless_available(problem(), required_by)

    return pytest_collection_modifyitems, pytest_runtest_setup
