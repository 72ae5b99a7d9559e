"""The README's shell blocks, run as a newcomer would: `make run` in one terminal,
the "Using it" commands in a second, Ctrl-C at the end. Only the port differs (a
free one instead of 8000) and the server's var/ folder (a temporary one), so a
developer's own `make run` is left alone. When a README command stops working,
this test says which."""

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.live import ROOT, free_port

README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
# `make test` is the command running this test; running it again would never end.
NOT_RUN_HERE = {"make test"}

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None, reason="no `make` on this machine (apt-get install make)"
)


def shell_blocks() -> list[str]:
    blocks = [(lang, body) for lang, body in FENCE.findall(README.read_text())]
    unlabeled = [body for lang, body in blocks if not lang]
    assert not unlabeled, f"label each README block (sh, or text for non-commands): {unlabeled}"
    return [body for lang, body in blocks if lang == "sh"]


def commands(block: str) -> list[str]:
    """The block's commands, without comments (continuation lines joined)."""
    lines = block.replace("\\\n", " ").splitlines()
    return [line.split("  #")[0].strip() for line in lines if line.strip() and line[0] != "#"]


@pytest.fixture
def make_run(tmp_path):
    """`make run` as the README says, on a free port; stopped with Ctrl-C (SIGINT to
    its process group, as a terminal sends it)."""
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "VAR_DIR": str(tmp_path / "var"),
        "PYTHONWARNINGS": "ignore",
    }
    for name in ("DATABASE_URL", "SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    log = tmp_path / "make-run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["make", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, proc, log)
        yield url, env, proc, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_for(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 300  # the first `make run` may install the venv
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"make run exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/versions", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"make run did not serve within 300 s:\n{log.read_text()}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_readme_shell_blocks_run_verbatim(make_run, tmp_path):
    url, env, proc, log = make_run
    blocks = shell_blocks()
    started = [block for block in blocks if "make run" in commands(block)]
    assert len(started) == 1, "one README block starts the server with `make run`"
    for command in commands(started[0]):
        assert command in {"make run", *NOT_RUN_HERE}, f"unexpected beside make run: {command}"

    # The second terminal: the checkout's files, the server's var/ and port.
    terminal = tmp_path / "terminal"
    terminal.mkdir()
    for name in ("manage.py", ".venv", "glance_site", "images", "templates"):
        (terminal / name).symlink_to(ROOT / name)
    shell_env = {k: v for k, v in env.items() if k != "PORT"}
    for block in blocks:
        if block is started[0]:
            continue
        script = block.replace("http://127.0.0.1:8000", url)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=terminal,
            env=shell_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"README block failed:\n{block}\n{done.stdout}\n{done.stderr}"
        if "restore_image" in block:
            # The block's last line shows the restored image.
            assert re.search(r"\|\s*status\s*\|\s*active\s*\|", done.stdout), done.stdout

    printed = log.read_text()
    password = (tmp_path / "var" / "admin_password").read_text().strip()
    assert f"Sign in at /admin/ as 'admin' with password {password!r}" in printed

    # Ctrl-C stops the server, the scrubber and the worker: nothing of the group survives.
    # gunicorn gives its workers up to graceful_timeout (30 s) to finish; a loaded
    # machine may need most of it.
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail(f"make run still running 90 s after Ctrl-C:\n{log.read_text()[-3000:]}")
    deadline = time.monotonic() + 30
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _group_alive(proc.pid), "a process of `make run` outlived Ctrl-C"
