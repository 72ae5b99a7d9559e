"""deploy/: what an operator installs on each node. The environment file names only
settings the registry reads, and with its placeholders filled in it passes
`manage.py check --deploy`; the systemd units parse (systemd-analyze) and start
programs and commands that exist. (The nginx site is rendered and run by the cluster
tests, tests/test_cluster.py.)"""

import re
import secrets
import shutil
import subprocess
import sys

import pytest

from tests.live import ROOT

DEPLOY = ROOT / "deploy"
ENV_FILE = DEPLOY / "registry.env.example"
UNITS = sorted((DEPLOY / "systemd").iterdir())
VARIABLE = re.compile(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", re.M)


def _sources() -> str:
    files = [*(ROOT / "glance_site").rglob("*.py"), *(ROOT / "images").rglob("*.py")]
    return "\n".join(path.read_text() for path in files)


def test_deploy_environment_file_sets_only_settings_the_registry_reads():
    sources = _sources()
    names = [name for name, _ in VARIABLE.findall(ENV_FILE.read_text())]
    unread = [name for name in names if not re.search(f"[\"']{name}[\"']", sources)]
    assert unread == []
    assert len(names) == len(set(names))


def test_deploy_environment_file_filled_in_passes_check_deploy(tmp_path):
    settings = {}
    for line in ENV_FILE.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            settings[name] = re.sub(r"<[^>]*>", secrets.token_urlsafe(40), value)
    assert "SECRET_KEY" in settings and "DATABASE_URL" in settings
    env = {"PATH": "/usr/bin:/bin", **settings, "VAR_DIR": str(tmp_path)}

    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "System check identified no issues (0 silenced)."


def _exec_starts(unit) -> list[list[str]]:
    return [
        line.split("=", 1)[1].split()
        for line in unit.read_text().splitlines()
        if line.startswith("ExecStart=")
    ]


def test_deploy_units_start_what_the_checkout_has():
    commands = ROOT / "images" / "management" / "commands"
    started = [command for unit in UNITS for command in _exec_starts(unit)]
    assert len(started) == 3
    for command in started:
        assert command[0].startswith("/opt/glance-registry/.venv/bin/")
        if command[1:2] == ["manage.py"]:
            known = {path.stem for path in commands.glob("*.py")} | {"db_worker"}
            assert command[2] in known
        else:
            assert command[1:3] == ["--config", "glance_site/gunicorn.conf.py"]
            assert (ROOT / command[2]).is_file()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_deploy_units_parse():
    done = subprocess.run(
        ["systemd-analyze", "verify", *map(str, UNITS)], capture_output=True, text=True
    )
    # Only the programs are missing here: they are the operator's /opt/glance-registry.
    complaints = [
        line for line in done.stderr.splitlines() if "is not executable" not in line and line
    ]
    assert complaints == []
