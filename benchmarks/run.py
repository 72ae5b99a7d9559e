"""`make bench`: the registry's speed, memory and scale, beside real Glance and the
machine's own limits.

    python -m benchmarks.run [--quick] [--db sqlite,postgres] [--repeat N] [--profile]
        [--only limits,upload,download,create,list,admin,scrub,auth,import,stores,nodes,migrate]
        [--no-glance]

Everything runs on a scratch database and store in a temp dir, against the production
server as `make run` starts it (gunicorn, gthread, 2 workers x 4 threads), started by
the tests' harness (tests/live.py), so the figures describe the server the tests and
`make soak` exercise. PostgreSQL is DATABASE_URL's server when it names one, else a
throwaway cluster (.ci/pg.sh); without server binaries that part is left out.

Glance 33 (tests/glance.py: its own pinned virtualenv, uwsgi as upstream
serves it, SQLite, the file store, no Keystone) runs beside the SQLite pass, and the
same workload goes to both, the servers taking turns: uploads (1 GiB with curl -T and
with glanceclient, chunked; ten at once of the small file), downloads whole and
ranged, creates at 4 and 16 concurrent clients, the list at each registry size, and
the scrubber (`glance-scrubber` over pending_delete images). The side-by-side table
shows each figure, its ratio to Glance's, and the machine's limit for the same bytes.
--no-glance leaves Glance out.

Each measurement runs several times; the tables show median, min and max, and the same
goes to benchmarks/results/bench-<time>.json (and latest.json). Budgets are ratios of
figures measured in the same run, so the machine's own speed (and noise) cancels:

- upload of 1 GiB (curl, glanceclient) >= 0.9 x Python's one-pass md5 + sha512 rate;
- server CPU seconds per GiB uploaded (the whole process tree, psutil) <= 1.3 x the CPU
  seconds hashlib takes for md5 + sha512 over the same bytes in one pass;
- server tree RSS growth <= 32 MiB per upload (one 1 GiB upload; ten at once);
- download >= 0.8 x nginx (Debian package, sendfile on) serving the same file (without
  nginx the registry's figures are printed beside `cat`);
- list p50 at the largest size <= 1.3 x p50 at 1,000 images; constant SQL queries per
  request whatever the page size; limit=1000 under 0.5 x Glance's p50 (measured; the
  issue's 260 ms without Glance);
- admin list: constant queries, no COUNT(*) over the whole table;
- scrub >= 500 images per second.

--quick uses small sizes (for developing the benchmark, not for its figures).
--profile samples the gunicorn workers with py-spy during the 1 GiB curl upload and the
limit=1000 list, and prints the hottest functions.

"import" times web-download, glance-direct and a qcow2 -> raw conversion through a
real `db_worker`, request to `active`, beside a plain upload of the same file
(imports.py).

"stores" uploads and downloads the largest file through the registry on the
filesystem, on Ceph RBD and on radosgw (S3), each beside the store's own rate without
HTTP, on tests/ceph.py's throwaway cluster (stores.py; left out without Ceph).

"nodes" lists through nginx with one node and with three on one PostgreSQL
(tests/cluster.py), the same images seeded and the same concurrent clients (nodes.py).

"auth" is what Keystone mode costs a request (keystone_auth.py): a GET with a Django
token beside the same GET with a cached Keystone token, and a new token's first use,
against a real Keystone (the tests' harness; left out when its venv is not built).

"migrate" times `import_glance` over a Glance 33 database of 10,000 images (1,000 with
--quick): dry run, --adopt-data and --copy-data, images/s and MiB/s beside the
machine's hashing rate (migrate.py).

The measurements live beside this file: upload.py (and the machine's limits),
download.py, listing.py (create, list, admin), keystone_auth.py, tests/glance.py and
glance_tasks.py (Glance); report.py makes the tables.
"""

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from benchmarks.common import MiB, Target, make_file, registry_target, task, tree_rss
from benchmarks.download import download_budgets, measure_download, measure_nginx
from benchmarks.glance_tasks import glance_target
from benchmarks.imports import IMPORT_ENV, measure_imports
from benchmarks.keystone_auth import measure_auth
from benchmarks.listing import list_budgets, measure_admin, measure_create, measure_list
from benchmarks.migrate import measure_migrate
from benchmarks.nodes import measure_nodes
from benchmarks.report import Results, log
from benchmarks.stores import measure_stores
from benchmarks.upload import (
    measure_inspection,
    measure_limits,
    measure_upload,
    upload_budgets,
)
from tests.glance import PROCESSES, pinned, running_glance
from tests.live import ROOT, running_registry, throwaway_postgres

SECTIONS = (
    "limits",
    "upload",
    "download",
    "create",
    "list",
    "admin",
    "scrub",
    "auth",
    "import",
    "stores",
    "nodes",
    "migrate",
)
# The in-process steps (benchmarks/tasks.py) use Django's test client, whose host is
# "testserver".
SERVER_ENV = {"ALLOWED_HOSTS": "127.0.0.1,localhost,testserver", **IMPORT_ENV}


def measure_scrub(res: Results, target: Target, db, n, repeat) -> None:
    rates, seconds = [], []
    for _ in range(repeat):
        out = target.scrub(n)
        if out["scrubbed"] != n or out["files_left"]:
            raise RuntimeError(f"{target.name} scrub did not finish: {out}")
        rates.append(out["per_second"])
        seconds.append(out["seconds"])
    name = f"{db} {n:,} pending_delete images, 1 KiB data each"
    res.add("scrub", name, "images/s", rates, target.name)
    res.add("scrub", f"{db} time to scrub {n:,} images", "s", seconds, target.name)
    if target.name == "registry":
        # The median, as every other budget here: one of the runs may meet
        # PostgreSQL's autovacuum of the rows just inserted (the note says how slow).
        res.budget(
            f"scrub {db}: images per second (median)",
            statistics.median(rates),
            500,
            statistics.median(rates) >= 500,
            note=f"slowest run {min(rates):.0f} images/s",
        )


def start_glance(res: Results, stack: contextlib.ExitStack, tmp: Path) -> Target | None:
    """Glance beside us for this pass, or None (and why, in the results) when it
    cannot be installed or started."""
    try:
        peer = stack.enter_context(running_glance(tmp))
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        res.skip(f"Glance: {err}".strip()[:2000])
        return None
    res.facts["glance"] = {
        "version": pinned("glance"),
        "server": f"uwsgi {pinned('uwsgi')} http router, {PROCESSES} processes (devstack's)",
        "database": "sqlite",
        "store": "file",
        "auth": "none ([paste_deploy] flavor empty)",
    }
    return glance_target(peer)


def database_for(db: str, stack: contextlib.ExitStack) -> str | None:
    """The `database` for running_registry: "sqlite", or a PostgreSQL server's URL
    (DATABASE_URL's, else a throwaway one); None when there is no PostgreSQL to be had."""
    if db != "postgres":
        return "sqlite"
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return url
    return stack.enter_context(throwaway_postgres())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir")
    parser.add_argument("--no-glance", action="store_true", help="leave real Glance out")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    dbs = [d for d in args.db.split(",") if d]
    if args.quick:
        sizes = {"32MiB": 32 * MiB, "128MiB": 128 * MiB}
        list_sizes, scrub_n, creates, requests = [1000, 2000, 5000], 1000, 100, 15
        repeat = args.repeat or 2
    else:
        sizes = {"100MiB": 100 * MiB, "1GiB": 1024 * MiB}
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
    put_rates = None
    with_glance = not args.no_glance and "sqlite" in dbs
    if not with_glance:
        res.skip("Glance beside us: --no-glance" if args.no_glance else "Glance: no sqlite pass")
    try:
        files = {}
        if only & {"limits", "upload", "download", "import", "stores"}:
            for label, size in sizes.items():
                files[label] = tmp / f"random-{label}.bin"
                make_file(files[label], size)
        if "limits" in only:
            measure_limits(res, files, repeat)

        nginx = "download" in only and measure_nginx(res, files, repeat, tmp)

        for db in dbs:
            with contextlib.ExitStack() as stack:
                database = database_for(db, stack)
                if database is None:
                    res.skip(f"{db}: no PostgreSQL server binaries (apt-get install postgresql)")
                    continue
                (tmp / db).mkdir()
                registry = stack.enter_context(
                    running_registry(tmp / db, workers=2, env=SERVER_ENV, database=database)
                )
                ours = registry_target(registry)
                res.facts[f"idle_rss_mib_{db}"] = tree_rss(registry) / MiB
                targets = [ours]
                if db == "sqlite" and with_glance:
                    glance = start_glance(res, stack, tmp / "glance")
                    if glance is not None:
                        res.facts["idle_rss_mib_glance"] = tree_rss(glance) / MiB
                        targets.append(glance)
                # Uploads, downloads and creates once, in the first pass; Glance's in
                # the pass it runs beside.
                once = [t for t in targets if t is not ours or db == dbs[0]]
                for target in once if "upload" in only else []:
                    measure_upload(res, target, files, repeat, args.profile, tmp)
                if db == dbs[0] and "upload" in only:
                    measure_inspection(res, ours, files, repeat, tmp)
                if db == dbs[0] and "import" in only and files:
                    measure_imports(res, registry, ours, files, repeat, tmp)
                for target in once if "download" in only else []:
                    measure_download(res, target, files, repeat, nginx)
                for target in once if "create" in only else []:
                    for clients in (4, 16):
                        measure_create(res, target, creates, repeat, clients)
                if db == dbs[0] and "upload" in only and "limits" in only:
                    # The store's own ceiling, in-process (no HTTP), on this store.
                    big = files[max(files, key=lambda k: files[k].stat().st_size)]
                    put = task(registry, "put", file=str(big), repeat=repeat)
                    put_rates = put["mib_per_s"]
                if "list" in only or "admin" in only:
                    measure_list(res, targets, db, list_sizes, requests, args.profile, tmp)
                    list_budgets(res, db, list_sizes)
                if "admin" in only:
                    measure_admin(res, registry, db, list_sizes[-1], requests)
                if "scrub" in only:
                    for target in targets:
                        # glance-scrubber takes minutes for 10,000 images: one run.
                        runs = repeat if target is ours else 1
                        measure_scrub(res, target, db, scrub_n, runs)
        if "auth" in only:
            measure_auth(res, tmp, repeat, total=requests * 20)
        if "stores" in only and files:
            measure_stores(res, files, repeat, tmp)
        if "nodes" in only:
            measure_nodes(res, tmp, repeat, images=list_sizes[1], requests=requests * 40)
        if "migrate" in only:
            measure_migrate(res, tmp, images=1000 if args.quick else 10_000)
        if put_rates is not None:
            big = max(files, key=lambda k: files[k].stat().st_size)
            res.add("limits", f"storage.put in-process from file {big}", "MiB/s", put_rates)
        if files:
            upload_budgets(res, files)
            download_budgets(res, files)
    finally:
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
    for name, mib in sorted(res.facts.items()):
        if name.startswith("idle_rss_mib_"):
            print(f"idle server tree RSS {name.removeprefix('idle_rss_mib_')}: {mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
