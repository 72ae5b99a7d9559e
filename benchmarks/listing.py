"""Image records at scale: creates through the API, the image list at growing
registry sizes (latency, and SQL queries per request for ours), and the admin's image
list."""

import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.common import ADMIN, Api, Target, profile_start, profile_top, task
from benchmarks.report import Results, log, percentile
from tests.live import Registry

# Real Glance 33 on this kind of machine (the issue), for runs without Glance beside us.
GLANCE_LIST_1000_MS = 260


def measure_create(res: Results, target: Target, total: int, repeat: int, clients: int) -> None:
    rates = []
    for r in range(repeat):
        per_client = total // clients

        def client(c, r=r, per_client=per_client):
            api = target.api()
            for i in range(per_client):
                api.create_image(f"create-{clients}-{r}-{c}-{i}")

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
        rates.append(per_client * clients / (time.perf_counter() - started))
    name = f"POST /v2/images, {clients} concurrent clients"
    res.add("create", name, "images/s", rates, target.name)


def list_name(db: str, size: int, limit: int) -> str:
    return f"{db} {size:>7,} images limit={limit:<4}"


def measure_list(res: Results, targets, db, sizes, requests, profile, tmp) -> None:
    """At each registry size, every target seeded to it and then listed: the servers
    take turns, so both see the machine in the same state."""
    for size in sizes:
        for target in targets:
            seeded = target.seed(size)
            log(
                f"{target.name} {db}: seeded {seeded['images']} images in {seeded['seconds']:.1f} s"
            )
            last = size == sizes[-1]
            _list_at(res, target, db, size, requests, tmp, last=last, profile=profile and last)


def _list_at(res: Results, target: Target, db, size, requests, tmp, *, last, profile) -> None:
    api = target.api()
    counts = target.queries() if target.queries else None
    for limit in (25, 1000):
        path = f"/v2/images?limit={limit}"
        n = requests if limit == 25 else max(requests // 3, 5)
        for _ in range(3):
            api.timed_get(path)
        spy = None
        if profile and limit == 1000 and target.name == "registry":
            spy_out = tmp / f"profile-list-{db}.txt"
            spy = profile_start(target, spy_out, 6)
            time.sleep(1)
            n = max(n, 40)
        ms = [1000 * api.timed_get(path) for _ in range(n)]
        if spy is not None:
            res.facts[f"profile_list_1000_{db}_{size}"] = profile_top(spy, spy_out)
        name = list_name(db, size, limit)
        row = res.add("list", name, "ms", ms, target.name, p95=percentile(ms, 0.95))
        res.add("list", f"{name} p95", "ms", [row["p95"]], target.name)
        if counts is not None:
            queries = counts[f"list_{limit}"]["queries"]
            res.add("list", f"{name} SQL queries", "queries", [queries], target.name)
    if counts is not None:
        res.facts[f"list_counts_{db}_{size}"] = {
            k: {"queries": v["queries"], "count_queries": v["count_queries"]}
            for k, v in counts.items()
        }
        if last:
            res.facts[f"list_sql_{db}_{size}"] = {k: v["sql"] for k, v in counts.items()}


def list_budgets(res: Results, db, sizes) -> None:
    small, large = sizes[0], sizes[-1]
    for limit in (25, 1000):
        ratio = res.median("list", list_name(db, large, limit)) / res.median(
            "list", list_name(db, small, limit)
        )
        res.budget(
            f"list {db} limit={limit}: p50 at {large:,} / p50 at {small:,}",
            ratio,
            1.3,
            ratio <= 1.3,
        )
    qs = {
        res.median("list", f"{list_name(db, size, limit)} SQL queries")
        for size in sizes
        for limit in (25, 1000)
    }
    res.budget(
        f"list {db}: SQL queries per request constant (page size, registry size)",
        "/".join(str(int(v)) for v in sorted(qs)),
        "one value",
        len(qs) == 1,
    )
    ms = res.median("list", list_name(db, large, 1000))
    glance = res.median("list", list_name(db, large, 1000), "glance")
    source = "measured" if glance else "the issue's"
    glance = glance or GLANCE_LIST_1000_MS
    res.budget(
        f"list {db} limit=1000 at {large:,}: p50 ms vs 0.5 x Glance",
        ms,
        0.5 * glance,
        ms < 0.5 * glance,
        f"Glance p50 {glance:.0f} ms ({source})",
    )


def measure_admin(res: Results, registry: Registry, db, size, requests) -> None:
    """Ours only: Glance has no admin pages."""
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
