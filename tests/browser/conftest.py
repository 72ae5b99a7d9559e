"""Browser tests: Playwright drives Debian's chromium (never `playwright install`)
against pytest-django's live server.

Without chromium the tests skip, unless REQUIRE_BROWSER=1 (CI), where they fail.
`make test` installs chromium itself when it can (.ci/setup-test-deps.sh).
"""

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    skip_without_chromium()


def skip_without_chromium() -> None:
    """No chromium: skip (fail with REQUIRE_BROWSER=1) before any fixture is set up.

    A check in a fixture comes too late: pytest-playwright's session-scoped `browser`
    fixture launches the browser first, and every test errored in that launch. Raised
    here, from a pytest_runtest_setup hook (this one, tests/keystone_mode's), the skip's
    location is this line, so `-ra` prints one line for all of them.
    """
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but there is no chromium at {CHROMIUM}", pytrace=False)
    pytest.skip(f"no chromium at {CHROMIUM}: apt-get install chromium (make test does, as root)")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


@pytest.fixture
def screenshot(page, request):
    """Save the page as artifacts/<test name>[-<step>].png."""
    ARTIFACTS.mkdir(exist_ok=True)

    def take(step: str = "") -> Path:
        name = request.node.name + (f"-{step}" if step else "")
        target = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(target), full_page=True)
        return target

    return take


@pytest.fixture
def sign_in(page, live_server):
    def sign_in_as(username: str, password: str = "pw") -> None:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")

    return sign_in_as
