"""What the measurements share: an HTTP client of the API, the server's memory, the
in-Django steps (benchmarks/tasks.py), test files and py-spy.

The server itself, its scratch database, store and users come from the tests'
harness, tests/live.py (`running_registry`), so the figures describe the same
server the tests and `make soak` exercise.
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


def tree_rss(registry: Registry) -> int:
    """The resident memory of the gunicorn master and its workers, in bytes."""
    try:
        master = psutil.Process(registry.pid)
        procs = [master, *master.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


class RssPeak:
    """Samples the server tree's RSS every 20 ms while in the with-block."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.idle = tree_rss(self.registry)
        self.peak = self.idle
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, tree_rss(self.registry))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.registry))

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


def profile_start(registry: Registry, out: Path, seconds: float) -> subprocess.Popen | None:
    spy = VENV_BIN / "py-spy"
    if not spy.exists():
        log("py-spy is not installed: no profile")
        return None
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(registry.pid),
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
