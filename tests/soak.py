"""`make soak`: N clients for a fixed time against the production server, then a check
that nothing was lost or left behind.

    python -m tests.soak [--clients 16] [--seconds 300] [--max-requests 1000000]
                         [--workers 4] [--seed N] [--nodes 1]

It starts gunicorn (gthread, as `make run` does) on a fresh database and store in a
temp dir — SQLite, or a new PostgreSQL database when DATABASE_URL names a server —
and the scrubber daemon beside it, with a 2-second scrub delay so restores race the
scrubber. Each client, as alice or bob, loops over list, get, upload (create + PUT,
chunked or with Content-Length), download (checked against the MD5 it uploaded),
delete, and restore (as rita, the recovery staff). It keeps at most
MAX_LIVE_PER_CLIENT images, so the store stays small however long it runs.

The run stops by itself at --seconds or --max-requests. Then the scrubber is stopped,
every active image is downloaded and hashed against its checksum and os_hash_value,
no image may be left in `saving`, and `verify_store --rehash` must be clean. It prints
requests, errors and 5xx per operation; the exit status is non-zero if anything
went wrong. tests/test_soak.py runs a short one in `make test`.

With --nodes 3 the same clients talk to three nodes behind nginx (tests/cluster.py: a
gunicorn with --workers workers and a scrubber daemon on each, one PostgreSQL, one
store), as several machines would serve them; tests/test_cluster.py runs a short one.
"""

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.cluster import running_cluster
from tests.live import ROOT, Registry, running_registry, running_scrubber, stop

MAX_LIVE_PER_CLIENT = 12
SIZES = (0, 1, 4096, 65_536, 300_000)  # bytes; 0 is Glance's empty image
# How often each operation is picked (an impossible pick, such as a download with
# no image yet, becomes an upload).
WEIGHTS = {"list": 20, "get": 15, "upload": 20, "download": 20, "delete": 15, "restore": 10}
# Answers that are right for an operation under concurrency. A restore may lose
# the race with the scrubber (409); nothing else may fail.
EXPECTED = {
    "list": {200},
    "get": {200},
    "create": {201},
    "upload": {204},
    "download": {200, 204},
    "delete": {204},
    "restore": {204, 409},
}


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: str, status: int | str, seconds: float) -> None:
        with self.lock:
            self.requests += 1
            self.statuses[op][status] += 1
            self.latencies[op].append(seconds)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    @property
    def server_errors(self) -> int:
        return sum(
            count
            for counter in self.statuses.values()
            for status, count in counter.items()
            if isinstance(status, int) and status >= 500
        )


class Client:
    """One keep-alive connection, one user's images, one random stream."""

    def __init__(self, registry: Registry, user: str, stats: Stats, budget, rng: random.Random):
        parts = urlsplit(registry.url)
        self.host, self.port = parts.hostname, parts.port
        self.registry = registry
        self.user = user
        self.stats = stats
        self.budget = budget
        self.rng = rng
        self.conn: http.client.HTTPConnection | None = None
        self.live: dict[str, str] = {}  # image id -> md5 of what was uploaded
        self.deleted: dict[str, str] = {}  # pending_delete images of ours

    def call(self, op, method, path, *, user=None, body=None, headers=None, chunked=False):
        """One request; returns (status, body), or (None, b"") after an error it recorded."""
        if not self.budget():
            raise StopIteration
        token = self.registry.tokens[user or self.user]
        all_headers = {"X-Auth-Token": token, "Accept": "application/json", **(headers or {})}
        start = time.monotonic()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            if chunked:
                data = body
                body = (data[i : i + 65_536] for i in range(0, len(data), 65_536))
            self.conn.request(method, path, body=body, headers=all_headers, encode_chunked=chunked)
            response = self.conn.getresponse()
            content = response.read()
            status: int | str = response.status
            if response.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            self.stats.record(op, type(exc).__name__, time.monotonic() - start)
            self.stats.error(f"{op} {method} {path}: {exc!r}")
            return None, b""
        self.stats.record(op, status, time.monotonic() - start)
        if status not in EXPECTED[op]:
            self.stats.error(
                f"{op} {method} {path} as {user or self.user}: {status} {content[:200]!r}"
            )
        return status, content

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def run(self) -> None:
        ops = list(WEIGHTS)
        weights = list(WEIGHTS.values())
        try:
            with contextlib.suppress(StopIteration):
                while True:
                    getattr(self, f"do_{self.rng.choices(ops, weights)[0]}")()
        finally:
            self.close()

    def do_list(self) -> None:
        status, body = self.call("list", "GET", "/v2/images?limit=20")
        if status == 200:
            for image in json.loads(body)["images"]:
                # Other clients' uploads may be queued or saving; never a deleted one.
                if image["status"] in ("pending_delete", "deleted", "killed"):
                    self.stats.error(f"list shows {image['id']} in {image['status']}")

    def do_get(self) -> None:
        if not self.live:
            return self.do_upload()
        image_id = self.rng.choice(list(self.live))
        status, body = self.call("get", "GET", f"/v2/images/{image_id}")
        if status == 200:
            image = json.loads(body)
            if (image["status"], image["checksum"]) != ("active", self.live[image_id]):
                self.stats.error(f"get {image_id}: {image['status']} {image['checksum']}")

    def do_upload(self) -> None:
        if len(self.live) >= MAX_LIVE_PER_CLIENT:
            return self.do_delete()
        status, body = self.call(
            "create",
            "POST",
            "/v2/images",
            body=json.dumps({"name": "soak", "disk_format": "raw", "container_format": "bare"}),
            headers={"Content-Type": "application/json"},
        )
        if status != 201:
            return
        image_id = json.loads(body)["id"]
        data = os.urandom(self.rng.choice(SIZES))
        chunked = self.rng.random() < 0.5
        status, _ = self.call(
            "upload",
            "PUT",
            f"/v2/images/{image_id}/file",
            body=data,
            headers={"Content-Type": "application/octet-stream"},
            chunked=chunked,
        )
        if status == 204:
            self.live[image_id] = hashlib.md5(data).hexdigest()

    def do_download(self) -> None:
        if not self.live:
            return self.do_upload()
        image_id = self.rng.choice(list(self.live))
        status, body = self.call("download", "GET", f"/v2/images/{image_id}/file")
        if status in (200, 204) and hashlib.md5(body).hexdigest() != self.live[image_id]:
            self.stats.error(f"download {image_id}: the bytes differ from those uploaded")

    def do_delete(self) -> None:
        if not self.live:
            return self.do_upload()
        image_id = self.rng.choice(list(self.live))
        status, _ = self.call("delete", "DELETE", f"/v2/images/{image_id}")
        if status == 204:
            self.deleted[image_id] = self.live.pop(image_id)

    def do_restore(self) -> None:
        if not self.deleted:
            return self.do_delete()
        image_id = self.rng.choice(list(self.deleted))
        status, _ = self.call(
            "restore", "POST", f"/v2/images/{image_id}/actions/restore", user="rita"
        )
        if status == 204:
            self.live[image_id] = self.deleted.pop(image_id)
        elif status == 409:
            self.deleted.pop(image_id)  # the scrubber had begun: it is gone for good


def _all_images(registry: Registry) -> list[dict]:
    parts = urlsplit(registry.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"X-Auth-Token": registry.tokens["admin"], "Accept": "application/json"}
    images, path = [], "/v2/images?limit=1000"
    while path:
        conn.request("GET", path, headers=headers)
        page = json.loads(conn.getresponse().read())
        images += page["images"]
        path = page.get("next")
    conn.close()
    return images


def verify(registry: Registry, stats: Stats) -> dict:
    """Every active image's bytes against its hashes; no upload left half-done; the store."""
    parts = urlsplit(registry.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"X-Auth-Token": registry.tokens["admin"]}
    verified = 0
    for image in _all_images(registry):
        if image["status"] != "active":
            continue
        conn.request("GET", f"/v2/images/{image['id']}/file", headers=headers)
        response = conn.getresponse()
        data = response.read()
        md5, sha = hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest()
        if (md5, sha, len(data)) != (image["checksum"], image["os_hash_value"], image["size"]):
            stats.error(f"verify {image['id']}: the stored bytes do not match the record")
        verified += 1
    conn.close()
    counts = json.loads(
        registry.manage(
            "shell",
            "-v0",
            "-c",
            "import json; from django.db.models import Count; from images.models import Image; "
            "print(json.dumps(dict(Image.objects.order_by().values_list('status')"
            ".annotate(n=Count('id')).values_list('status', 'n'))))",
        )
    )
    if counts.get("saving"):
        stats.error(f"{counts['saving']} images left in saving")
    store = subprocess.run(
        [sys.executable, "manage.py", "verify_store", "--rehash"],
        cwd=ROOT,
        env=registry.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    store_report = (store.stdout + store.stderr).strip()
    if store.returncode != 0:
        stats.error(f"verify_store --rehash: {store_report}")
    return {"verified": verified, "statuses": counts, "verify_store": store_report}


def soak(
    *,
    clients: int,
    seconds: float,
    max_requests: int,
    workers: int = 4,
    seed: int | None = None,
    tmp: Path | None = None,
    nodes: int = 1,
) -> dict:
    """Run the soak; returns its figures (the caller decides what passes). With
    `nodes` > 1, against that many nodes behind nginx (tests/cluster.py), each with
    its scrubber, on PostgreSQL."""
    seed = random.randrange(2**32) if seed is None else seed
    with contextlib.ExitStack() as stack:
        if tmp is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        env = {"IMAGES_SCRUB_DELAY_SECONDS": "2", "IMAGES_SCRUB_WAKEUP_SECONDS": "1"}
        if nodes > 1:
            cluster = stack.enter_context(
                running_cluster(tmp, nodes=nodes, workers=workers, env=env)
            )
            registry = cluster.as_registry()
            scrubbers = [node.scrubber for node in cluster.nodes]
            logs = [node.registry.log for node in cluster.nodes]
            logs += [node.registry.log.parent / "scrubber.log" for node in cluster.nodes]
        else:
            registry = stack.enter_context(running_registry(tmp, workers=workers, env=env))
            scrubbers = [stack.enter_context(running_scrubber(registry))]
            logs = [registry.log, registry.log.parent / "scrubber.log"]
        stats = Stats()
        deadline = time.monotonic() + seconds
        issued = iter(range(max_requests))

        def budget() -> bool:
            return time.monotonic() < deadline and next(issued, None) is not None

        threads = [
            threading.Thread(
                target=Client(
                    registry, ("alice", "bob")[n % 2], stats, budget, random.Random(seed + n)
                ).run,
                name=f"soak-client-{n}",
            )
            for n in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        duration = time.monotonic() - stats.started
        for scrubber in scrubbers:  # TERM: each finishes the pass under way
            stop(scrubber)
        checked = verify(registry, stats)
        for log in logs:
            text = log.read_text() if log.exists() else ""
            if "Traceback" in text:
                stats.error(f"{log.parent.name}/{log.name} has an exception:\n{text[-3000:]}")
    return {
        "clients": clients,
        "nodes": nodes,
        "seconds": round(duration, 1),
        "seed": seed,
        "requests": stats.requests,
        "errors": stats.errors,
        "server_errors": stats.server_errors,
        "operations": {
            op: {
                "count": sum(counter.values()),
                "statuses": dict(counter),
                "p50_ms": round(statistics.median(stats.latencies[op]) * 1000, 1),
                "max_ms": round(max(stats.latencies[op]) * 1000, 1),
            }
            for op, counter in sorted(stats.statuses.items())
        },
        **checked,
    }


def report(figures: dict) -> str:
    lines = [
        f"soak: {figures['clients']} clients, {_where(figures['nodes'])}, {figures['seconds']} s, "
        f"{figures['requests']} requests ({figures['requests'] / figures['seconds']:.0f}/s), "
        f"{len(figures['errors'])} errors, {figures['server_errors']} 5xx (seed {figures['seed']})"
    ]
    for op, row in figures["operations"].items():
        statuses = ", ".join(
            f"{status}: {n}" for status, n in sorted(row["statuses"].items(), key=str)
        )
        lines.append(
            f"  {op:<9} {row['count']:>7}  p50 {row['p50_ms']:>7} ms  max {row['max_ms']:>8} ms"
            f"  [{statuses}]"
        )
    lines.append(
        f"  verified {figures['verified']} active images against their checksums; "
        f"statuses at the end {figures['statuses']}"
    )
    lines.append(f"  verify_store --rehash: {figures['verify_store']}")
    lines += [f"  ERROR {error}" for error in figures["errors"][:50]]
    return "\n".join(lines)


def _where(nodes: int) -> str:
    return "one server" if nodes == 1 else f"{nodes} nodes behind nginx"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument(
        "--workers", type=int, help="gunicorn workers per node (default 4; 2 with --nodes)"
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument("--nodes", type=int, default=1, help="nodes behind nginx (PostgreSQL)")
    args = parser.parse_args()
    figures = soak(
        clients=args.clients,
        seconds=args.seconds,
        max_requests=args.max_requests,
        workers=args.workers or (4 if args.nodes == 1 else 2),
        seed=args.seed,
        nodes=args.nodes,
    )
    print(report(figures), flush=True)
    return 1 if figures["errors"] or figures["server_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
