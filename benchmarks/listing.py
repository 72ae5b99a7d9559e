"""Image records at scale: creates through the API, the image list at growing
registry sizes (latency and SQL queries per request), and the admin's image list."""

import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.common import ADMIN, USER, Api, profile_start, profile_top, task
from benchmarks.report import Results, log, percentile
from tests.live import Registry

GLANCE_LIST_1000_MS = 260  # real Glance 33 on this kind of machine (the issue): 260-320 ms


def measure_create(res: Results, registry: Registry, total: int, repeat: int) -> None:
    rates = []
    for r in range(repeat):
        per_client = total // 4

        def client(c, r=r, per_client=per_client):
            api = Api(registry.port, registry.tokens[USER])
            for i in range(per_client):
                api.create_image(f"create-{r}-{c}-{i}")

        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(client, range(4)))
        rates.append(per_client * 4 / (time.perf_counter() - started))
    res.add("create", "POST /v2/images, 4 concurrent clients", "images/s", rates)


def measure_list(res: Results, registry: Registry, db, sizes, requests, profile, tmp) -> None:
    api = Api(registry.port, registry.tokens[USER])
    p50 = {}
    for size in sizes:
        seeded = task(registry, "seed", total=size)
        log(f"{db}: seeded {seeded['images']} images in {seeded['seconds']:.1f} s")
        counts = task(registry, "counts")
        for limit in (25, 1000):
            path = f"/v2/images?limit={limit}"
            n = requests if limit == 25 else max(requests // 3, 5)
            for _ in range(3):
                api.timed_get(path)
            spy = None
            if profile and limit == 1000 and size == sizes[-1]:
                spy_out = tmp / f"profile-list-{db}.txt"
                spy = profile_start(registry, spy_out, 6)
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


def measure_admin(res: Results, registry: Registry, db, size, requests) -> None:
    api = Api(registry.port, headers={"Cookie": f"sessionid={registry.session_cookie(ADMIN)}"})
    path = "/admin/images/image/"
    for _ in range(2):
        api.timed_get(path)
    ms = [1000 * api.timed_get(path) for _ in range(max(requests // 3, 5))]
    counts = task(registry, "counts")["admin_list"]
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
