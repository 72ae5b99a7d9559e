"""The real thing: the production server (gunicorn, gthread workers, as `make run`
starts it) on a free 127.0.0.1 port, with its own database and store, for the
real Glance clients to talk to. The one harness for the tests, `make soak`
(tests/soak.py) and `make bench` (benchmarks/), so all three measure what
operators run.

`running_registry` is a plain context manager (no pytest here: the benchmarks run
without it). The tests use it through the session-wide `registry` fixture
(tests/conftest.py), and directly when they need a server of their own with a
different environment (a failing store, a full disk, a short stale-upload window,
more workers). Each database is fresh: a SQLite file in a temporary directory, or,
when DATABASE_URL (or `database=`) names PostgreSQL (the `make test-postgres` pass),
a new database on that server, migrated on start and dropped afterwards.
`throwaway_postgres` starts such a server of its own (.ci/pg.sh).

`running_registry` is `fresh_deployment` (the database, the store, the settings and
the cast) and `serving` (one gunicorn on them). tests/cluster.py calls the two apart:
one deployment, several nodes serving it.
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

    @property
    def port(self) -> int:
        return urlsplit(self.url).port

    def workers(self) -> list[int]:
        """The pids of the master's worker processes (Linux /proc)."""
        return _children(self.pid)

    def manage(self, *args: str) -> str:
        return _manage(self.env, *args)

    def session_cookie(self, username: str) -> str:
        """A signed-in session for `username` (the value of the sessionid cookie)."""
        out = self.manage("shell", "-v0", "-c", SESSION_SCRIPT.format(username=username))
        return out.split()[-1]


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in children.split()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_manage(env, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """manage.py of this checkout with `env`: its outcome, whatever it is."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _manage(env, *args: str) -> str:
    done = run_manage(env, *args)
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


def _wait_until_serving(url: str, proc: subprocess.Popen, log: Path, workers: int) -> None:
    """Until it answers and every worker is forked: a measurement of the workers (a
    benchmark's memory, a test that kills one) must not start with some missing."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/versions", timeout=2) as response:
                if response.status == 200 and len(_children(proc.pid)) >= workers:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer within 30 s:\n{log.read_text()}")


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str | None]:
    """A PostgreSQL server of its own for the duration (.ci/pg.sh: a private cluster
    on a unix socket, gone afterwards); yields its DATABASE_URL, or None when there
    are no server binaries (.ci/setup-test-deps.sh says how to get them)."""
    script = 'source .ci/pg.sh; [ -n "$(pg_bin)" ] || exit 3; pg_up >&2 || exit 1; '
    script += 'echo "$DATABASE_URL $PGTMP $PG_BIN"'
    up = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True)
    if up.returncode == 3:
        yield None
        return
    if up.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not start:\n{up.stderr[-3000:]}")
    url, pgtmp, pgbin = up.stdout.split()
    try:
        yield url
    finally:
        env = {**os.environ, "PGTMP": pgtmp, "PG_BIN": pgbin}
        subprocess.run(["bash", "-c", "source .ci/pg.sh; pg_down"], cwd=ROOT, env=env)


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

SESSION_SCRIPT = """
from django.contrib.auth import get_user_model
from django.test import Client
client = Client()
client.force_login(get_user_model().objects.get(username={username!r}))
print(client.cookies["sessionid"].value)
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


@dataclass(frozen=True)
class Deployment:
    """What every node of one registry shares: its environment (database, store,
    secret key, settings) and the cast's tokens. `serving` starts a node on it."""

    env: dict[str, str]
    tokens: dict[str, str]

    def manage(self, *args: str) -> str:
        return _manage(self.env, *args)


@contextlib.contextmanager
def fresh_deployment(
    tmp: Path, *, env: dict[str, str] | None = None, database: str | None = None
) -> Iterator[Deployment]:
    """A fresh database, migrated, with the cast, and a store under `tmp`; the
    PostgreSQL database is dropped afterwards. `env` and `database` as in
    running_registry."""
    database_url = os.environ.get("DATABASE_URL", "") if database is None else database
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
    try:
        _manage(full_env, "migrate", "--noinput", "-v0")
        tokens = {}
        for line in _manage(full_env, "shell", "-c", USERS_SCRIPT).splitlines():
            if line.startswith("TOKEN "):
                _, user, key = line.split()
                tokens[user] = key
        yield Deployment(env=full_env, tokens=tokens)
    finally:
        if drop is not None:
            drop()


@contextlib.contextmanager
def serving(
    deployment: Deployment,
    node_dir: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    port: int | None = None,
    access_log: bool = False,
) -> Iterator[Registry]:
    """The production server on a deployment's database and store: the registry, or
    one more node of it. Its log (and with `access_log`, gunicorn's access log) and
    its TMPDIR are under `node_dir`."""
    (node_dir / "tmp").mkdir(parents=True, exist_ok=True)
    env = {**deployment.env, "TMPDIR": str(node_dir / "tmp")}
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = node_dir / "gunicorn.log"
    access = str(node_dir / "access.log") if access_log else "/dev/null"
    proc = None
    try:
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
                    access,
                ],
                cwd=ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        _wait_until_serving(url, proc, log, workers)
        yield Registry(
            url=url,
            tokens=deployment.tokens,
            store=Path(env["IMAGES_STORE"]),
            env=env,
            pid=proc.pid,
            log=log,
        )
    finally:
        if proc is not None:
            stop(proc)


@contextlib.contextmanager
def running_registry(
    tmp: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    env: dict[str, str] | None = None,
    database: str | None = None,
    port: int | None = None,
) -> Iterator[Registry]:
    """Start the production server on a fresh database and store under `tmp`.

    `env` adds to or overrides the server's environment (a failing store, a short
    stale-upload window, ...); `manage()` runs commands with the same environment.
    The server gets its own TMPDIR, so a test can tell it left no temporary files.
    `database` is "sqlite" or the URL of a PostgreSQL server to make a new database
    on; by default, DATABASE_URL's server if it names one, else SQLite. The users
    are alice, bob, admin (superuser) and rita (recovery staff); `tokens` has theirs.
    `port` is where to serve (a catalog may already name it); by default a free one.
    Several nodes on one database and store: tests/cluster.py.
    """
    with (
        fresh_deployment(tmp, env=env, database=database) as deployment,
        serving(deployment, tmp, workers=workers, threads=threads, port=port) as registry,
    ):
        yield registry


def stop(proc: subprocess.Popen) -> None:
    """TERM, then KILL after 20 s; reaped either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running_worker(
    registry: Registry, *, log_name: str = "worker.log", interval: str = "0.2"
) -> Iterator[subprocess.Popen]:
    """A `manage.py db_worker` (django-tasks) beside the server, on its database and
    store, as `make run` starts one; stopped (TERM, then KILL) on exit. A test may
    SIGKILL it itself to play a worker that died."""
    with _beside(registry, log_name, "db_worker", "--interval", interval) as proc:
        yield proc


@contextlib.contextmanager
def running_scrubber(
    registry: Registry, *, log_name: str = "scrubber.log"
) -> Iterator[subprocess.Popen]:
    """`manage.py scrub_images --daemon` beside the server, as `make run` starts it;
    its report lines ("scrubbed N, failed ...") go to `log_name` beside the server's
    log. Stopped with TERM, which lets the pass under way finish."""
    with _beside(registry, log_name, "scrub_images", "--daemon") as proc:
        yield proc


@contextlib.contextmanager
def _beside(registry: Registry, log_name: str, *args: str) -> Iterator[subprocess.Popen]:
    log = registry.log.parent / log_name
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(BIN / "python"), "manage.py", *args],
            cwd=ROOT,
            env=registry.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        stop(proc)
