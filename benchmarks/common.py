"""What the measurements share: the servers measured (`Target`), an HTTP client of the
API, the server's memory and CPU, the in-Django steps (benchmarks/tasks.py), test
files and py-spy.

Our server, its scratch database, store and users come from the tests' harness,
tests/live.py (`running_registry`), so the figures describe the same server the tests
and `make soak` exercise; Glance comes from tests/glance.py. Each
measurement takes a `Target` and runs the same requests against either.
"""

import contextlib
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.report import log
from tests.live import ROOT, Registry

MiB = 2**20
VENV_BIN = Path(sys.executable).parent
# tests/live.py's users: the API consumer whose uploads and lists are measured (tasks.py
# seeds half the images as hers), and the superuser for the admin's pages.
USER = "alice"
ADMIN = "admin"


def task(registry: Registry, command: str, **args):
    """One step of benchmarks/tasks.py, in a subprocess with the server's environment."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.tasks", command, json.dumps(args)],
        cwd=ROOT,
        env=registry.env,
        capture_output=True,
        text=True,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"task {command} failed:\n{proc.stdout[-3000:]}{proc.stderr[-5000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


@dataclass(frozen=True)
class Target:
    """A server the workload runs against: ours ("registry") or Glance ("glance").

    `seed(total)`, `scrub(n)` and `queries()` are the steps that go around the API
    (seeding the database, the scrubber, SQL captured in-process); None where the
    server has no such step."""

    name: str
    port: int
    pid: int  # the master process: CPU and memory are its whole tree's
    store: Path  # the uploaded bytes of an image are the file named by its id here
    token: str | None = None
    seed: Callable[[int], dict] | None = None
    scrub: Callable[[int], dict] | None = None
    queries: Callable[[], dict] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def curl_headers(self) -> list[str]:
        return [f"X-Auth-Token: {self.token}"] if self.token else []

    def api(self) -> "Api":
        return Api(self.port, self.token)


def registry_target(registry: Registry) -> Target:
    return Target(
        name="registry",
        port=registry.port,
        pid=registry.pid,
        store=registry.store,
        token=registry.tokens[USER],
        seed=lambda total: task(registry, "seed", total=total),
        scrub=lambda n: task(registry, "scrub", n=n),
        queries=lambda: task(registry, "counts"),
    )


def _tree(pid: int) -> list[psutil.Process]:
    try:
        master = psutil.Process(pid)
        return [master, *master.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(server) -> int:
    """The resident memory of the server's master and its workers, in bytes."""
    total = 0
    for p in _tree(server.pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def tree_cpu(server) -> float:
    """User + system CPU seconds used so far by the server's master and every process
    under it (workers, uwsgi's http router). Workers live as long as the server
    (neither server recycles them), so a difference of two readings is the work done
    in between."""
    total = 0.0
    for p in _tree(server.pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = p.cpu_times()
            total += times.user + times.system
    return total


class RssPeak:
    """Samples the server tree's RSS every 20 ms while in the with-block, and takes
    its CPU seconds on entry and exit."""

    def __init__(self, server):
        self.server = server
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.idle = tree_rss(self.server)
        self.peak = self.idle
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._cpu = tree_cpu(self.server)
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, tree_rss(self.server))

    def __exit__(self, *exc):
        self.cpu_seconds = tree_cpu(self.server) - self._cpu
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.server))

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.idle) / MiB


class Api:
    """A keep-alive HTTP/1.1 client of the Glance v2 API."""

    def __init__(self, port: int, token: str | None = None, headers: dict | None = None):
        self.port = port
        self.headers = {"X-Auth-Token": token} if token else {}
        self.headers.update(headers or {})
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def request(self, method: str, path: str, body=None, headers=None):
        hdrs = {**self.headers, **(headers or {})}
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            self.conn.request(method, path, body=body, headers=hdrs)
            response = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
            self.conn.request(method, path, body=body, headers=hdrs)
            response = self.conn.getresponse()
        data = response.read()
        return response.status, response, data

    def create_image(self, name: str, disk_format="raw", container_format="bare") -> str:
        status, _, data = self.request(
            "POST",
            "/v2/images",
            {"name": name, "disk_format": disk_format, "container_format": container_format},
        )
        if status != 201:
            raise RuntimeError(f"create answered {status}: {data[:500]!r}")
        return json.loads(data)["id"]

    def timed_get(self, path: str) -> float:
        started = time.perf_counter()
        status, _, data = self.request("GET", path)
        elapsed = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {data[:500]!r}")
        return elapsed


def make_file(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        left = size
        while left:
            n = min(left, 16 * MiB)
            out.write(os.urandom(n))
            left -= n


def timed(cmd: list[str], **kw) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - started


def profile_start(server, out: Path, seconds: float) -> subprocess.Popen | None:
    spy = VENV_BIN / "py-spy"
    if not spy.exists():
        log("py-spy is not installed: no profile")
        return None
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(server.pid),
            "--subprocesses",
            "--format",
            "raw",
            "--rate",
            "250",
            "--duration",
            str(int(seconds)),
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def profile_top(proc: subprocess.Popen | None, out: Path, n: int = 15) -> list[str]:
    """The hottest functions of a py-spy raw profile, by own samples, per thread kind."""
    if proc is None:
        return []
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait()
    if not out.exists():
        return ["(py-spy wrote no profile: ptrace not permitted?)"]
    own: Counter = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.split(";")[-1]
        own[leaf] += int(count)
        total += int(count)
    lines = [f"{total} on-CPU samples of the gunicorn processes; own time by function:"]
    for leaf, count in own.most_common(n):
        lines.append(f"  {100 * count / total:5.1f}%  {leaf}")
    return lines
