"""List rates with one node and with three (issue 14): tests/cluster.py's nodes behind
nginx on one PostgreSQL, seeded with the same images, and the same list requests from
the same number of concurrent keep-alive clients through nginx. On this project's
2-core machines three nodes share the cores one node has, so the figure to read is
that nginx and the extra nodes cost nothing, not that they scale; on three machines
each node brings its own cores."""

import http.client
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.common import task
from benchmarks.report import Results, log
from tests.cluster import nginx_binary, running_cluster

CLIENTS = 8
PATHS = ("/v2/images?limit=25", "/v2/images?limit=25&sort=name:asc")


def measure_nodes(res: Results, tmp: Path, repeat: int, images: int, requests: int) -> None:
    if nginx_binary() is None:
        res.skip("list through nginx with 1 and 3 nodes: no nginx (apt-get install nginx-light)")
        return
    for nodes in (1, 3):
        folder = tmp / f"nodes-{nodes}"
        folder.mkdir()
        try:
            with running_cluster(folder, nodes=nodes) as cluster:
                task(cluster.nodes[0].registry, "seed", total=images)
                token = cluster.tokens["alice"]
                rates = [_list_rate(cluster.url, token, requests) for _ in range(repeat)]
        except RuntimeError as exc:  # no PostgreSQL server binaries
            res.skip(f"list with {nodes} node(s): {exc}")
            return
        res.add("nodes", _name(images, nodes), "req/s", rates)
        log(f"nodes: {nodes} node(s), {max(rates):.0f} list requests/s (best)")
    one, three = res.median("nodes", _name(images, 1)), res.median("nodes", _name(images, 3))
    res.budget(
        "nodes: list rate, 3 nodes / 1 node behind nginx (same cores)",
        three / one,
        ">= 0.8",
        three / one >= 0.8,
        "the balancing and the nodes' own overhead: on separate machines each node adds cores",
    )


def _name(images: int, nodes: int) -> str:
    return f"list limit=25 at {images} images, {nodes} node(s) behind nginx"


def _list_rate(url: str, token: str, total: int) -> float:
    """`total` list requests from CLIENTS keep-alive clients at once; requests per second."""
    parts = urlsplit(url)
    failures: list[str] = []
    per_client = total // CLIENTS

    def client() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            for n in range(per_client):
                conn.request("GET", PATHS[n % 2], headers={"X-Auth-Token": token})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    failures.append(str(response.status))
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"list through nginx answered {sorted(set(failures))}")
    return per_client * CLIENTS / elapsed
