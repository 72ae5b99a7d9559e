"""`make bench`: the registry's speed, memory and scale, beside the machine's own limits.

    python -m benchmarks.run [--quick] [--only limits,upload,download,create,list,admin,scrub]
                             [--db sqlite,postgres] [--repeat N] [--profile]

Everything runs on a scratch database and store in a temp dir, against the production
server started as `make run` starts it (gunicorn, gthread, 2 workers x 4 threads). Each
measurement runs several times; the table shows median, min and max, and the same
goes to benchmarks/results/bench-<time>.json (and latest.json). Budgets are ratios of
figures measured in the same run, so the machine's own speed (and noise) cancels:

- upload of 1 GiB with curl >= 0.9 x Python's one-pass md5 + sha512 rate on the file;
- server tree RSS growth <= 32 MiB per upload (one 1 GiB upload; ten 256 MiB at once);
- download >= 0.8 x nginx (Debian package, sendfile on) serving the same file;
- list p50 at the largest size <= 1.3 x p50 at 1,000 images; constant SQL queries per
  request whatever the page size; limit=1000 under 0.5 x Glance's 260 ms on this kind
  of machine;
- admin list: constant queries, no COUNT(*) over the whole table;
- scrub >= 500 images per second.

--quick uses small sizes (for developing the benchmark, not for its figures).
--profile samples the gunicorn workers with py-spy during the 1 GiB curl upload and the
limit=1000 list, and prints the hottest functions.
"""

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
VENV_BIN = Path(sys.executable).parent
MiB = 2**20
GLANCE_LIST_1000_MS = 260  # real Glance 33 on this kind of machine (the issue): 260-320 ms
SECTIONS = ("limits", "upload", "download", "create", "list", "admin", "scrub")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * p
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


# --- results -------------------------------------------------------------------------------


class Results:
    def __init__(self, config: dict):
        self.rows: list[dict] = []
        self.budgets: list[dict] = []
        self.facts: dict = {}
        self.config = config

    def add(self, section: str, name: str, unit: str, samples, **extra) -> dict:
        samples = [float(s) for s in samples]
        row = {
            "section": section,
            "name": name,
            "unit": unit,
            "n": len(samples),
            "median": statistics.median(samples),
            "min": min(samples),
            "max": max(samples),
            "samples": samples,
            **extra,
        }
        self.rows.append(row)
        log(f"{section} {name}: median {row['median']:.2f} {unit} (n={len(samples)})")
        return row

    def get(self, section: str, name: str) -> dict | None:
        return next((r for r in self.rows if r["section"] == section and r["name"] == name), None)

    def budget(self, name: str, value, limit, holds: bool, note: str = "") -> None:
        self.budgets.append(
            {"budget": name, "value": value, "limit": limit, "holds": bool(holds), "note": note}
        )

    def table(self) -> str:
        lines = [
            f"{'section':<9} {'measurement':<52} {'unit':<8} "
            f"{'median':>10} {'min':>10} {'max':>10} {'n':>3}"
        ]
        lines.append("-" * len(lines[0]))
        for r in self.rows:
            lines.append(
                f"{r['section']:<9} {r['name']:<52} {r['unit']:<8} "
                f"{r['median']:>10.2f} {r['min']:>10.2f} {r['max']:>10.2f} {r['n']:>3}"
            )
        lines.append("")
        lines.append(f"{'budget':<62} {'value':>10} {'limit':>12}  holds")
        lines.append("-" * 94)
        for b in self.budgets:
            value = b["value"] if isinstance(b["value"], str) else f"{b['value']:.3f}"
            limit = b["limit"] if isinstance(b["limit"], str) else f"{b['limit']:.3f}"
            mark = "yes" if b["holds"] else "NO"
            lines.append(f"{b['budget']:<62} {value:>10} {limit:>12}  {mark}")
            if b["note"]:
                lines.append(f"    {b['note']}")
        return "\n".join(lines)

    def write(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        body = {
            "when": stamp,
            "config": self.config,
            "facts": self.facts,
            "rows": self.rows,
            "budgets": self.budgets,
        }
        path = RESULTS / f"bench-{stamp}.json"
        path.write_text(json.dumps(body, indent=2, default=str))
        (RESULTS / "latest.json").write_text(path.read_text())
        return path


# --- the scratch environment ---------------------------------------------------------------


class Scratch:
    """A temp dir holding one database's VAR_DIR (SQLite file, store, static files)."""

    def __init__(self, base: Path, name: str, database_url: str | None):
        self.dir = base / name
        self.dir.mkdir(parents=True)
        self.database_url = database_url
        self.store = self.dir / "images"

    def env(self, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(
            DJANGO_SETTINGS_MODULE="glance_site.settings",
            SECRET_KEY="benchmark-only-secret-key-" + "x" * 30,
            ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
            VAR_DIR=str(self.dir),
            IMAGES_STORE=str(self.store),
            PYTHONPATH=str(ROOT),
            DJANGO_DEBUG="0",
        )
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        env.update(extra)
        return env

    def task(self, command: str, **args):
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.tasks", command, json.dumps(args)],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(
                f"task {command} failed:\n{proc.stdout[-3000:]}{proc.stderr[-5000:]}"
            )
        return json.loads(lines[-1][len("RESULT ") :])


class Server:
    """gunicorn as `make run` starts it, on a free loopback port."""

    def __init__(self, scratch: Scratch):
        self.scratch = scratch
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = scratch.dir / "gunicorn.log"

    def start(self) -> None:
        cmd = [
            str(VENV_BIN / "gunicorn"),
            "--config",
            str(ROOT / "glance_site" / "gunicorn.conf.py"),  # as `make run` starts it
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "2",
        ]
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.scratch.env(), stdout=self.log, stderr=self.log
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_path.read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/versions")
                if conn.getresponse().status == 200 and len(self.workers()) == 2:
                    conn.close()
                    time.sleep(0.5)
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer within 60 s")

    def workers(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def tree_rss(self) -> int:
        total = 0
        try:
            procs = [psutil.Process(self.proc.pid), *self.workers()]
        except psutil.NoSuchProcess:
            return 0
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()


class RssPeak:
    """Samples the server tree's RSS every 20 ms while in the with-block."""

    def __init__(self, server: Server):
        self.server = server
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.idle = self.server.tree_rss()
        self.peak = self.idle
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.server.tree_rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.server.tree_rss())

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

    def create_image(self, name: str) -> str:
        status, _, data = self.request(
            "POST",
            "/v2/images",
            {"name": name, "disk_format": "raw", "container_format": "bare"},
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


# --- measurements --------------------------------------------------------------------------


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


def python_one_pass(path: Path) -> float:
    import hashlib

    md5, sha = hashlib.md5(), hashlib.sha512()
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(MiB):
            md5.update(chunk)
            sha.update(chunk)
    return time.perf_counter() - started


def python_two_threads(path: Path) -> float:
    """md5 and sha512 on their own threads, the file read on the caller's: the
    ceiling of the store's hashing design on this machine."""
    import hashlib

    md5, sha = hashlib.md5(), hashlib.sha512()
    pending = None
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool, open(path, "rb", buffering=0) as f:
        while chunk := f.read(MiB):
            if pending:
                for p in pending:
                    p.result()
            pending = (pool.submit(md5.update, chunk), pool.submit(sha.update, chunk))
        for p in pending or ():
            p.result()
    return time.perf_counter() - started


def measure_limits(res: Results, files: dict[str, Path], repeat: int) -> None:
    for label, path in files.items():
        mib = path.stat().st_size / MiB
        for name, run in (
            ("md5sum", lambda p=path: timed(["md5sum", str(p)])),
            ("sha512sum", lambda p=path: timed(["sha512sum", str(p)])),
            ("python md5+sha512 one pass", lambda p=path: python_one_pass(p)),
            ("python md5 | sha512 on two threads", lambda p=path: python_two_threads(p)),
            ("cat > /dev/null", lambda p=path: timed(["cat", str(p)])),
        ):
            res.add("limits", f"{name} {label}", "MiB/s", [mib / run() for _ in range(repeat)])


def curl_upload(port: int, token: str, image_id: str, path: Path) -> float:
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "PUT",
            "-H",
            f"X-Auth-Token: {token}",
            "-H",
            "Content-Type: application/octet-stream",
            "-T",
            str(path),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{time_total}",
            f"http://127.0.0.1:{port}/v2/images/{image_id}/file",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    if out[0] != "204":
        raise RuntimeError(f"curl upload answered {out[0]}")
    return float(out[1])


def glanceclient_upload(port: int, token: str, image_id: str, path: Path) -> float:
    from glanceclient import Client

    client = Client("2", endpoint=f"http://127.0.0.1:{port}", token=token)
    with open(path, "rb") as data:
        started = time.perf_counter()
        client.images.upload(image_id, data, image_size=path.stat().st_size)
        return time.perf_counter() - started


def drop_stored(scratch: Scratch, image_id: str) -> None:
    """Keep the scratch disk small: the bytes of a measured upload are not needed again."""
    (scratch.store / image_id).unlink(missing_ok=True)


def profile_start(server: Server, out: Path, seconds: float) -> subprocess.Popen | None:
    spy = VENV_BIN / "py-spy"
    if not spy.exists():
        log("py-spy is not installed: no profile")
        return None
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(server.proc.pid),
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


def measure_upload(res, server, scratch, api, tokens, files, repeat, profile, tmp) -> None:
    token = tokens["token"]
    big = max(files, key=lambda k: files[k].stat().st_size)
    # Warm up both workers (imports, thread stacks, DB connections) so that the RSS
    # growth measured below is the upload's own.
    warm = tmp / "warm.bin"
    make_file(warm, 8 * MiB)
    for n in range(4):
        image_id = api.create_image(f"warm-{n}")
        curl_upload(server.port, token, image_id, warm)
        drop_stored(scratch, image_id)
    for label, path in files.items():
        mib = path.stat().st_size / MiB
        for client, upload in (("curl", curl_upload), ("glanceclient", glanceclient_upload)):
            rates, growth = [], []
            for i in range(repeat):
                image_id = api.create_image(f"upload-{client}-{label}-{i}")
                os.sync()
                spy = None
                if profile and client == "curl" and label == big and i == 0:
                    spy_out = tmp / "profile-upload.txt"
                    spy = profile_start(server, spy_out, 8)
                    time.sleep(1)
                with RssPeak(server) as rss:
                    seconds = upload(server.port, token, image_id, path)
                if spy is not None:
                    res.facts[f"profile_upload_{big}_curl"] = profile_top(spy, spy_out)
                rates.append(mib / seconds)
                growth.append(rss.growth_mib)
                drop_stored(scratch, image_id)
            res.add("upload", f"{client} {label}", "MiB/s", rates)
            res.add("upload", f"{client} {label} server RSS growth", "MiB", growth)

    # Ten uploads at once, with Content-Length, of the smaller file.
    path = files[min(files, key=lambda k: files[k].stat().st_size)]
    label = next(k for k, v in files.items() if v == path)
    rates, growth = [], []
    for i in range(max(2, repeat - 1)):
        ids = [api.create_image(f"parallel-{i}-{n}") for n in range(10)]
        os.sync()
        with RssPeak(server) as rss, ThreadPoolExecutor(10) as pool:
            started = time.perf_counter()
            list(pool.map(lambda x: curl_upload(server.port, token, x, path), ids))
            wall = time.perf_counter() - started
        rates.append(10 * path.stat().st_size / MiB / wall)
        growth.append(rss.growth_mib / 10)
        for image_id in ids:
            drop_stored(scratch, image_id)
    res.add("upload", f"10 parallel curl {label}, aggregate", "MiB/s", rates)
    res.add("upload", f"10 parallel curl {label} RSS growth per upload", "MiB", growth)


NGINX_CONF = """
daemon off;
worker_processes 1;
user root;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def curl_download(url: str, headers: list[str], expect: str) -> tuple[float, int]:
    cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True).stdout.split()
    if out[0] != expect:
        raise RuntimeError(f"GET {url} answered {out[0]}, expected {expect}")
    return float(out[2]), int(out[1])


def measure_download(res, server, scratch, api, tokens, files, repeat, tmp) -> None:
    label = max(files, key=lambda k: files[k].stat().st_size)
    path = files[label]
    size = path.stat().st_size
    image_id = api.create_image(f"download-{label}")
    curl_upload(server.port, tokens["token"], image_id, path)
    stored = scratch.store / image_id
    nginx_dir = tmp / "nginx"
    nginx_dir.mkdir()
    nginx_port = free_port()
    conf = nginx_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=nginx_dir, port=nginx_port, root=scratch.store))
    nginx = subprocess.Popen(
        ["nginx", "-c", str(conf), "-p", str(nginx_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        ours = f"http://127.0.0.1:{server.port}/v2/images/{image_id}/file"
        theirs = f"http://127.0.0.1:{nginx_port}/{image_id}"
        auth = [f"X-Auth-Token: {tokens['token']}"]
        first, last = size // 4, 3 * size // 4 - 1
        rng = [f"Range: bytes={first}-{last}"]
        n = max(repeat, 5)
        cases = (
            (f"registry {label} whole", ours, auth, "200", size),
            (f"registry {label} Range (middle half)", ours, auth + rng, "206", last - first + 1),
            (f"nginx {label} whole", theirs, [], "200", size),
            (f"nginx {label} Range (middle half)", theirs, rng, "206", last - first + 1),
        )
        curl_download(ours, auth, "200")  # warm the page cache and the connection path
        for name, url, headers, expect, length in cases:
            rates = []
            for _ in range(n):
                seconds, got = curl_download(url, headers, expect)
                if got != length:
                    raise RuntimeError(f"{name}: got {got} bytes, expected {length}")
                rates.append(length / MiB / seconds)
            res.add("download", name, "MiB/s", rates)
        res.add(
            "download",
            f"cat {label} (stored file) > /dev/null",
            "MiB/s",
            [size / MiB / timed(["cat", str(stored)]) for _ in range(n)],
        )
    finally:
        nginx.terminate()
        nginx.wait(10)


def measure_create(res, server, tokens, total: int, repeat: int) -> None:
    rates = []
    for r in range(repeat):
        per_client = total // 4

        def client(c, r=r, per_client=per_client):
            api = Api(server.port, tokens["token"])
            for i in range(per_client):
                api.create_image(f"create-{r}-{c}-{i}")

        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(client, range(4)))
        rates.append(per_client * 4 / (time.perf_counter() - started))
    res.add("create", "POST /v2/images, 4 concurrent clients", "images/s", rates)


def measure_list(res, server, scratch, tokens, db, sizes, requests, profile, tmp) -> None:
    api = Api(server.port, tokens["token"])
    p50 = {}
    for size in sizes:
        seeded = scratch.task("seed", total=size)
        log(f"{db}: seeded {seeded['images']} images in {seeded['seconds']:.1f} s")
        counts = scratch.task("counts")
        for limit in (25, 1000):
            path = f"/v2/images?limit={limit}"
            n = requests if limit == 25 else max(requests // 3, 5)
            for _ in range(3):
                api.timed_get(path)
            spy = None
            if profile and limit == 1000 and size == sizes[-1]:
                spy_out = tmp / f"profile-list-{db}.txt"
                spy = profile_start(server, spy_out, 6)
                time.sleep(1)
                n = max(n, 40)
            ms = [1000 * api.timed_get(path) for _ in range(n)]
            if spy is not None:
                res.facts[f"profile_list_1000_{db}_{size}"] = profile_top(spy, spy_out)
            queries = counts[f"list_{limit}"]["queries"]
            row = res.add(
                "list",
                f"{db} {size:>7,} images limit={limit:<4}",
                "ms",
                ms,
                p95=percentile(ms, 0.95),
                queries=queries,
            )
            p50[(size, limit)] = row["median"]
            res.add("list", f"{db} {size:>7,} images limit={limit:<4} p95", "ms", [row["p95"]])
            res.add(
                "list", f"{db} {size:>7,} images limit={limit:<4} SQL queries", "queries", [queries]
            )
        res.facts[f"list_counts_{db}_{size}"] = {
            k: {"queries": v["queries"], "count_queries": v["count_queries"]}
            for k, v in counts.items()
        }
        if size == sizes[-1]:
            res.facts[f"list_sql_{db}_{size}"] = {k: v["sql"] for k, v in counts.items()}
    small, large = sizes[0], sizes[-1]
    for limit in (25, 1000):
        ratio = p50[(large, limit)] / p50[(small, limit)]
        res.budget(
            f"list {db} limit={limit}: p50 at {large:,} / p50 at {small:,}",
            ratio,
            1.3,
            ratio <= 1.3,
        )
    qs = {
        (size, limit): res.facts[f"list_counts_{db}_{size}"][f"list_{limit}"]["queries"]
        for size in sizes
        for limit in (25, 1000)
    }
    res.budget(
        f"list {db}: SQL queries per request constant (page size, registry size)",
        "/".join(str(v) for v in sorted(set(qs.values()))),
        "one value",
        len(set(qs.values())) == 1,
    )
    ms = p50[(large, 1000)]
    res.budget(
        f"list {db} limit=1000 at {large:,}: p50 ms vs 0.5 x Glance {GLANCE_LIST_1000_MS} ms",
        ms,
        0.5 * GLANCE_LIST_1000_MS,
        ms < 0.5 * GLANCE_LIST_1000_MS,
    )


def measure_admin(res, server, scratch, tokens, db, size, requests) -> None:
    api = Api(server.port, headers={"Cookie": f"sessionid={tokens['admin_session']}"})
    path = "/admin/images/image/"
    for _ in range(2):
        api.timed_get(path)
    ms = [1000 * api.timed_get(path) for _ in range(max(requests // 3, 5))]
    counts = scratch.task("counts")["admin_list"]
    res.add("admin", f"{db} image list page, {size:,} images", "ms", ms, p95=percentile(ms, 0.95))
    res.add("admin", f"{db} image list page SQL queries", "queries", [counts["queries"]])
    res.facts[f"admin_sql_{db}"] = counts["sql"]
    res.budget(
        f"admin {db}: no COUNT(*) over the whole table",
        str(len(counts["full_counts"])),
        "0",
        not counts["full_counts"],
        "; ".join(s[:160] for s in counts["full_counts"]),
    )
    res.facts[f"admin_counts_{db}"] = counts["count_queries"]


def measure_scrub(res, scratch, db, n, repeat) -> None:
    rates = []
    for _ in range(repeat):
        out = scratch.task("scrub", n=n)
        if out["scrubbed"] != n or out["files_left"]:
            raise RuntimeError(f"scrub did not finish: {out}")
        rates.append(out["per_second"])
    res.add("scrub", f"{db} {n:,} pending_delete images, 1 KiB data each", "images/s", rates)
    res.budget(
        f"scrub {db}: images per second (median)", statistics.median(rates), 500, min(rates) >= 500
    )


# --- the run -----------------------------------------------------------------------------


def postgres_up(tmp: Path) -> dict | None:
    script = (
        'source .ci/pg.sh; [ -n "$(pg_bin)" ] || exit 3; pg_up >&2 || exit 1; '
        'echo "$DATABASE_URL"; echo "$PGTMP"; echo "$PG_BIN"'
    )
    proc = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        log(f"PostgreSQL not started ({proc.returncode}): {proc.stderr[-500:]}")
        return None
    url, pgtmp, pgbin = proc.stdout.split()
    return {"DATABASE_URL": url, "PGTMP": pgtmp, "PG_BIN": pgbin}


def postgres_down(pg: dict) -> None:
    env = {**os.environ, "PGTMP": pg["PGTMP"], "PG_BIN": pg["PG_BIN"]}
    subprocess.run(["bash", "-c", "source .ci/pg.sh; pg_down"], cwd=ROOT, env=env)


def budgets_from_rows(res: Results, files: dict[str, Path]) -> None:
    if not files:
        return
    big = max(files, key=lambda k: files[k].stat().st_size)
    small = min(files, key=lambda k: files[k].stat().st_size)
    one_pass = res.get("limits", f"python md5+sha512 one pass {big}")
    up = res.get("upload", f"curl {big}")
    if one_pass and up:
        ratio = up["median"] / one_pass["median"]
        res.budget(f"upload curl {big}: MiB/s / Python one-pass hashing", ratio, 0.9, ratio >= 0.9)
    for name in (f"curl {big} server RSS growth", f"glanceclient {big} server RSS growth"):
        row = res.get("upload", name)
        if row:
            res.budget(f"upload {name} (max), MiB", row["max"], 32.0, row["max"] <= 32)
    row = res.get("upload", f"10 parallel curl {small} RSS growth per upload")
    if row:
        res.budget(
            f"upload 10 x {small}: RSS growth per upload (max), MiB",
            row["max"],
            32.0,
            row["max"] <= 32,
        )
    for kind in ("whole", "Range (middle half)"):
        ours = res.get("download", f"registry {big} {kind}")
        nginx = res.get("download", f"nginx {big} {kind}")
        if ours and nginx:
            ratio = ours["median"] / nginx["median"]
            res.budget(f"download {big} {kind}: registry / nginx", ratio, 0.8, ratio >= 0.8)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    dbs = [d for d in args.db.split(",") if d]
    if args.quick:
        sizes = {"32MiB": 32 * MiB, "128MiB": 128 * MiB}
        list_sizes, scrub_n, creates, requests = [1000, 2000, 5000], 1000, 100, 15
        repeat = args.repeat or 2
    else:
        sizes = {"256MiB": 256 * MiB, "1GiB": 1024 * MiB}
        list_sizes, scrub_n, creates, requests = [1000, 10000, 100000], 10000, 400, 30
        repeat = args.repeat or 3
    load = os.getloadavg()
    config = {
        "quick": args.quick,
        "sections": sorted(only),
        "databases": dbs,
        "repeat": repeat,
        "file_sizes": {k: v for k, v in sizes.items()},
        "list_sizes": list_sizes,
        "scrub_images": scrub_n,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "memory_mib": psutil.virtual_memory().total // MiB,
        },
        "load_at_start": load,
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }
    res = Results(config)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="glance-bench-"))
    log(f"scratch dir {tmp}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    pg = None
    try:
        files = {}
        if only & {"limits", "upload", "download"}:
            for label, size in sizes.items():
                files[label] = tmp / f"random-{label}.bin"
                make_file(files[label], size)
        if "limits" in only:
            measure_limits(res, files, repeat)

        for db in dbs:
            if db == "postgres":
                pg = postgres_up(tmp)
                if pg is None:
                    res.facts["postgres"] = "not available: PostgreSQL server binaries not found"
                    continue
                scratch = Scratch(tmp, "postgres", pg["DATABASE_URL"])
            else:
                scratch = Scratch(tmp, "sqlite", None)
            tokens = scratch.task("setup")
            http_sections = {"upload", "download", "create", "list", "admin"}
            if not only & (http_sections if db == dbs[0] else {"list", "admin"}):
                if "scrub" in only:
                    measure_scrub(res, scratch, db, scrub_n, repeat)
                if pg is not None:
                    postgres_down(pg)
                    pg = None
                continue
            server = Server(scratch)
            server.start()
            try:
                api = Api(server.port, tokens["token"])
                res.facts[f"idle_rss_mib_{db}"] = server.tree_rss() / MiB
                if db == dbs[0]:
                    if "upload" in only:
                        measure_upload(
                            res, server, scratch, api, tokens, files, repeat, args.profile, tmp
                        )
                    if "download" in only:
                        measure_download(res, server, scratch, api, tokens, files, repeat, tmp)
                    if "create" in only:
                        measure_create(res, server, tokens, creates, repeat)
                if "list" in only or "admin" in only:
                    measure_list(
                        res, server, scratch, tokens, db, list_sizes, requests, args.profile, tmp
                    )
                if "admin" in only:
                    measure_admin(res, server, scratch, tokens, db, list_sizes[-1], requests)
            finally:
                server.stop()
            if "scrub" in only:
                measure_scrub(res, scratch, db, scrub_n, repeat)
            if pg is not None:
                postgres_down(pg)
                pg = None
        if "upload" in only and "limits" in only:
            res.add(
                "limits",
                "storage.put in-process from file "
                + max(files, key=lambda k: files[k].stat().st_size),
                "MiB/s",
                Scratch(tmp, "put", None).task(
                    "put",
                    file=str(files[max(files, key=lambda k: files[k].stat().st_size)]),
                    repeat=repeat,
                )["mib_per_s"],
            )
        budgets_from_rows(res, files)
    finally:
        if pg is not None:
            postgres_down(pg)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    res.facts["seconds"] = time.monotonic() - started
    res.facts["load_at_end"] = os.getloadavg()
    print(res.table())
    for key, lines in res.facts.items():
        if key.startswith("profile_"):
            print(f"\n{key}:")
            print("\n".join(lines))
    path = res.write()
    print(f"\nJSON: {path.relative_to(ROOT)}  ({res.facts['seconds']:.0f} s)")
    load_end = res.facts["load_at_end"]
    print(f"load average at start {load[0]:.2f}, at end {load_end[0]:.2f} (2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
