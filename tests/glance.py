"""Real Glance 33: beside our registry in `make bench` (same machine, same workload),
and the source database of the import_glance tests (tests/glance_mode, `make
test-glance`). The one start-up both share, as tests/live.py is for our server.

Installed from PyPI into its own virtualenv (var/bench/glance-venv, outside git), every
package pinned in benchmarks/glance-requirements.txt; rebuilt only when that file or
the Python version changes. Glance 33 has no standalone server any more (`glance-api`
only prints that it is gone): it is served as upstream deploys it, by uwsgi on the
`glance.wsgi.api:application` module with devstack's uwsgi settings (the `http` router
Apache proxies to in devstack, here listened on directly; 2 processes, as devstack's
API_WORKERS on 2 cores; no threads). Per run: a scratch directory, SQLite migrated by
`glance-manage db_sync`, the file store, delayed delete on (as ours), no Keystone:

- `[paste_deploy] flavor =` (empty) takes the `default` pipeline of the shipped
  glance-api-paste.ini: no authtoken, `unauthenticated-context` instead, so a
  request needs no token and an image's owner is null.
- That context has is_admin but no roles, and Glance 33's default policies (secure
  RBAC) want `role:admin` or a project member: every write answers 403. With
  `[oslo_policy] enforce_new_defaults = False` (and enforce_scope off) the deprecated
  rules apply, `rule:default` is "" and all may: Glance's classic no-auth setup.
- `chunked-input-limit`: glanceclient sends 1 MiB chunks, uwsgi's default limit is
  1 MB, so every glanceclient upload failed with "unable to receive chunked part"
  (devstack has Apache in front, which re-chunks smaller).
"""

import contextlib
import hashlib
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.live import ROOT, free_port

# Left in benchmarks/ where `make bench` introduced it: the virtualenv's stamp is the
# file's hash, so moving or rewording it would rebuild var/bench/glance-venv.
REQUIREMENTS = ROOT / "benchmarks" / "glance-requirements.txt"
VENV = ROOT / "var" / "bench" / "glance-venv"
PROCESSES = 2


def pinned(package: str) -> str:
    """The version glance-requirements.txt pins for `package`."""
    for line in REQUIREMENTS.read_text().splitlines():
        name, _, version = line.partition("==")
        if name.lower() == package.lower():
            return version
    return "?"


GLANCE_CONF = """\
[DEFAULT]
debug = False
use_stderr = True
delayed_delete = True
node_staging_uri = file://{dir}/staging
image_cache_dir = {dir}/cache

[database]
connection = sqlite:///{dir}/glance.sqlite?timeout=20

[glance_store]
stores = file
default_store = file
filesystem_store_datadir = {dir}/store

[paste_deploy]
flavor =
config_file = {venv}/etc/glance/glance-api-paste.ini

[oslo_policy]
enforce_new_defaults = False
enforce_scope = False

[oslo_concurrency]
lock_path = {dir}/locks
"""

# devstack's write_local_uwsgi_http_config, plus need-app (fail at start, not with
# 500s), chunked-input-limit (see the module's docstring) and http-manage-expect:
# curl -T asks `Expect: 100-continue` and, unanswered, waits a second before sending
# (in devstack Apache in front answers it; gunicorn answers it for ours).
UWSGI_INI = """\
[uwsgi]
module = glance.wsgi.api:application
virtualenv = {venv}
http = 127.0.0.1:{port}
processes = {processes}
master = true
die-on-term = true
exit-on-reload = true
enable-threads = true
thunder-lock = true
buffer-size = 65535
add-header = Connection: close
lazy-apps = true
http-raw-body = true
http-chunked-input = true
http-auto-chunked = true
need-app = true
chunked-input-limit = 4194304
http-manage-expect = 1
"""


def _stamp() -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update(platform.python_version().encode())
    return digest.hexdigest()


def ensure_venv() -> Path:
    """The Glance virtualenv, built from glance-requirements.txt unless the one on disk
    was built from the same file. Raises RuntimeError when pip fails."""
    stamp = VENV / ".requirements-sha256"
    if stamp.exists() and stamp.read_text() == _stamp() and (VENV / "bin" / "uwsgi").exists():
        return VENV
    print(
        f"installing Glance into {VENV.relative_to(ROOT)} (once; uwsgi compiles, ~2 min)",
        file=sys.stderr,
        flush=True,
    )
    shutil.rmtree(VENV, ignore_errors=True)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    python = shutil.which("python3") or sys.executable
    subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    pip = VENV / "bin" / "pip"
    pip = subprocess.run(
        [str(pip), "install", "-q", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        raise RuntimeError(f"pip install -r {REQUIREMENTS.name} failed:\n{pip.stderr[-3000:]}")
    stamp.write_text(_stamp())
    return VENV


@dataclass(frozen=True)
class Peer:
    url: str
    pid: int  # the uwsgi master; its children are the workers and the http router
    dir: Path
    venv: Path
    conf: Path  # glance-api.conf, also read by glance-scrubber
    store: Path  # the file store: one file per image, named by its id
    database: Path  # the SQLite file
    log: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def run(self, tool: str, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
        """One of Glance's commands (glance-manage, glance-scrubber) on this config."""
        done = subprocess.run(
            [str(self.venv / "bin" / tool), "--config-file", str(self.conf), *args],
            env=_env(self.dir),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done


_problem: list[str | None] = []


def missing() -> str | None:
    """Why Glance cannot run here (one line), or None once its virtualenv is built."""
    if not _problem:
        try:
            ensure_venv()
            _problem.append(None)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            _problem.append(f"Glance 33 cannot be installed from PyPI: {last}")
    return _problem[0]


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE_URL"))}
    env.update(
        OS_GLANCE_CONFIG_DIR=str(tmp / "etc"),
        TMPDIR=str(tmp / "tmp"),
        PYTHONWARNINGS="ignore",
        PATH=f"{VENV / 'bin'}:{env.get('PATH', '')}",
    )
    return env


def _wait_until_serving(url: str, proc: subprocess.Popen, log_path: Path, processes: int) -> None:
    """Until /versions answers and every worker has loaded the app (lazy-apps: each
    worker imports Glance itself, a few seconds each)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uwsgi exited with {proc.returncode}:\n{_tail(log_path)}")
        ready = log_path.read_bytes().count(b"WSGI app 0 (mountpoint='') ready")
        if ready >= processes:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/versions", timeout=5) as response,
            ):
                if response.status == 200:
                    return
        time.sleep(0.2)
    raise RuntimeError(f"Glance did not answer within 180 s:\n{_tail(log_path)}")


def _tail(path: Path) -> str:
    return path.read_bytes()[-4000:].decode(errors="replace")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the master (die-on-term: it stops its workers and router), then
    SIGKILL to each left by pid."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def prepared_glance(
    tmp: Path, *, processes: int = PROCESSES, policy: dict[str, str] | None = None
) -> Peer:
    """Glance's configuration and its database, migrated by `glance-manage db_sync`,
    under `tmp`, not yet served (pid 0): what `running_glance` serves, and a database
    to fill with SQL (benchmarks/migrate.py). `policy` overrides rules of its policy
    (etc/policy.yaml): the no-auth context has no roles, so `role:admin` rules refuse."""
    venv = ensure_venv()
    for sub in ("etc", "store", "staging", "cache", "locks", "tmp"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    if policy:
        lines = [f'"{rule}": "{check}"' for rule, check in policy.items()]
        (tmp / "etc" / "policy.yaml").write_text("\n".join(lines) + "\n")
    conf = tmp / "etc" / "glance-api.conf"
    conf.write_text(GLANCE_CONF.format(dir=tmp, venv=venv))
    port = free_port()
    ini = tmp / "etc" / "uwsgi.ini"
    ini.write_text(UWSGI_INI.format(venv=venv, port=port, processes=processes))
    peer = Peer(
        url=f"http://127.0.0.1:{port}",
        pid=0,
        dir=tmp,
        venv=venv,
        conf=conf,
        store=tmp / "store",
        database=tmp / "glance.sqlite",
        log=tmp / "uwsgi.log",
    )
    peer.run("glance-manage", "db_sync", timeout=300)
    # As ours runs SQLite (glance_site/settings.py): write-ahead log, 20 s busy timeout.
    # Without them two uwsgi workers writing at once fail with "database is locked".
    with contextlib.closing(sqlite3.connect(peer.database)) as db:
        db.execute("PRAGMA journal_mode=WAL")
    return peer


@contextlib.contextmanager
def running_glance(
    tmp: Path, *, processes: int = PROCESSES, policy: dict[str, str] | None = None
) -> Iterator[Peer]:
    """Glance 33 on a free 127.0.0.1 port, on a fresh SQLite database and file store
    under `tmp` (`prepared_glance`); stopped (by pid) on leaving."""
    peer = prepared_glance(tmp, processes=processes, policy=policy)
    proc = None
    try:
        with open(peer.log, "wb") as log_file:
            proc = subprocess.Popen(
                [str(peer.venv / "bin" / "uwsgi"), "--ini", str(tmp / "etc" / "uwsgi.ini")],
                cwd=tmp,
                env=_env(tmp),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        _wait_until_serving(peer.url, proc, peer.log, processes)
        yield Peer(**{**peer.__dict__, "pid": proc.pid})
    finally:
        if proc is not None:
            _stop(proc)


def call(
    url: str,
    method: str,
    path: str,
    body: bytes | dict | list | None = None,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request to a Glance-compatible API; (status, body), errors included."""
    import json
    import urllib.error

    data = json.dumps(body).encode() if isinstance(body, dict | list) else body
    request = urllib.request.Request(f"{url}{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
