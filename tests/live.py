"""The real thing: the production server (gunicorn, gthread workers, as `make run`
starts it) on a free 127.0.0.1 port, with its own database and store, for the
real Glance clients to talk to.

One server per test session (the `registry` fixture), and `running_registry` for
tests that need their own with a different environment (a failing store, a full
disk, a short stale-upload window, more workers). Each database is fresh: a SQLite
file in a temporary directory, or, when DATABASE_URL names PostgreSQL (the
`make test-postgres` pass), a new database on that server, migrated on start and
dropped afterwards.
"""

import atexit
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GUNICORN_CONFIG = ROOT / "glance_site" / "gunicorn.conf.py"  # as `make run` starts it


@dataclass(frozen=True)
class Registry:
    url: str
    tokens: dict[str, str]
    store: Path
    env: dict[str, str]
    pid: int = 0  # the gunicorn master
    log: Path | None = None

    def workers(self) -> list[int]:
        """The pids of the master's worker processes (Linux /proc)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        return [int(pid) for pid in children.split()]

    def manage(self, *args: str) -> str:
        return _manage(self.env, *args)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(env, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _postgres_database(url: str):
    """A fresh database on the PostgreSQL server of `url`; returns (its url, drop())."""
    import psycopg

    name = f"registry_e2e_{secrets.token_hex(4)}"
    parts = urlsplit(url)
    admin_url = url

    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(parts._replace(path=f"/{name}")), drop


def _libpq(url: str) -> str:
    # libpq understands postgresql:// URLs, including ?host=/socket/dir.
    return "postgresql://" + url.split("://", 1)[1]


def _wait_until_serving(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/versions", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer within 30 s:\n{log.read_text()}")


USERS_SCRIPT = """
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
User = get_user_model()
for name in ("alice", "bob"):
    User.objects.create_user(username=name)
admin = User.objects.create_superuser(username="admin", password="unused-in-tests")
rita = User.objects.create_user(username="rita", is_staff=True)
rita.user_permissions.add(*Permission.objects.filter(codename__in=["view_image", "restore_image"]))
for user in User.objects.filter(username__in=["alice", "bob", "admin", "rita"]):
    print("TOKEN", user.username, Token.objects.get_or_create(user=user)[0].key)
"""


_static: list[Path] = []


def _collected_static(env: dict[str, str]) -> Path:
    """Static files collected once per test run, as `make run` does, so the admin and
    the browsable pages render under the production server (DEBUG off)."""
    if not _static:
        root = Path(tempfile.mkdtemp(prefix="registry-static-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _manage({**env, "VAR_DIR": str(root)}, "collectstatic", "--noinput", "-v0")
        _static.append(root / "static")
    return _static[0]


@contextlib.contextmanager
def running_registry(
    tmp: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    env: dict[str, str] | None = None,
) -> Iterator[Registry]:
    """Start the production server on a fresh database and store under `tmp`.

    `env` adds to or overrides the server's environment (a failing store, a short
    stale-upload window, ...); `manage()` runs commands with the same environment.
    The server gets its own TMPDIR, so a test can tell it left no temporary files.
    """
    database_url = os.environ.get("DATABASE_URL", "")
    drop = None
    if database_url.startswith(("postgres://", "postgresql://")):
        database_url, drop = _postgres_database(database_url)
    else:
        database_url = f"sqlite:///{tmp / 'registry.sqlite3'}"
    (tmp / "tmp").mkdir(exist_ok=True)
    full_env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_DEBUG": "0",
        "VAR_DIR": str(tmp / "var"),
        "IMAGES_STORE": str(tmp / "store"),
        "IMAGES_DELAYED_DELETE": "1",
        "PYTHONWARNINGS": "ignore",
        "TMPDIR": str(tmp / "tmp"),
        **(env or {}),
    }
    full_env.pop("DJANGO_SETTINGS_MODULE", None)
    (tmp / "var").mkdir(exist_ok=True)
    (tmp / "var" / "static").symlink_to(_collected_static(full_env))
    proc = None
    try:
        _manage(full_env, "migrate", "--noinput", "-v0")
        tokens = {}
        for line in _manage(full_env, "shell", "-c", USERS_SCRIPT).splitlines():
            if line.startswith("TOKEN "):
                _, user, key = line.split()
                tokens[user] = key
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp / "gunicorn.log"
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [
                    str(BIN / "gunicorn"),
                    "--config",
                    str(GUNICORN_CONFIG),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    str(workers),
                    "--threads",
                    str(threads),
                    "--access-logfile",
                    "/dev/null",
                ],
                cwd=ROOT,
                env=full_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        _wait_until_serving(url, proc, log)
        yield Registry(
            url=url,
            tokens=tokens,
            store=Path(full_env["IMAGES_STORE"]),
            env=full_env,
            pid=proc.pid,
            log=log,
        )
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if drop is not None:
            drop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture
def payload_file(tmp_path):
    """A few MiB of random bytes on disk, and their content."""

    def make(size: int = 3 * 1024 * 1024 + 321):
        data = os.urandom(size)
        path = tmp_path / f"disk-{size}.raw"
        path.write_bytes(data)
        return path, data

    return make
