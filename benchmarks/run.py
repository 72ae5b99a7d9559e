"""`make bench`: the registry's speed, memory and scale, beside the machine's own limits.

    python -m benchmarks.run [--quick] [--only limits,upload,download,create,list,admin,scrub]
                             [--db sqlite,postgres] [--repeat N] [--profile]

Everything runs on a scratch database and store in a temp dir, against the production
server as `make run` starts it (gunicorn, gthread, 2 workers x 4 threads), started by
the tests' harness (tests/live.py), so the figures describe the server the tests and
`make soak` exercise. PostgreSQL is DATABASE_URL's server when it names one, else a
throwaway cluster (.ci/pg.sh); without server binaries that part is left out. Each
measurement runs several times; the table shows median, min and max, and the same
goes to benchmarks/results/bench-<time>.json (and latest.json). Budgets are ratios of
figures measured in the same run, so the machine's own speed (and noise) cancels:

- upload of 1 GiB with curl >= 0.9 x Python's one-pass md5 + sha512 rate on the file;
- server tree RSS growth <= 32 MiB per upload (one 1 GiB upload; ten 256 MiB at once);
- download >= 0.8 x nginx (Debian package, sendfile on) serving the same file (without
  nginx the registry's figures are printed alone);
- list p50 at the largest size <= 1.3 x p50 at 1,000 images; constant SQL queries per
  request whatever the page size; limit=1000 under 0.5 x Glance's 260 ms on this kind
  of machine;
- admin list: constant queries, no COUNT(*) over the whole table;
- scrub >= 500 images per second.

--quick uses small sizes (for developing the benchmark, not for its figures).
--profile samples the gunicorn workers with py-spy during the 1 GiB curl upload and the
limit=1000 list, and prints the hottest functions.

The measurements live beside this file: upload.py (and the machine's limits),
download.py, listing.py (create, list, admin); report.py makes the table.
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

from benchmarks.common import USER, Api, MiB, make_file, task, tree_rss
from benchmarks.download import download_budgets, measure_download
from benchmarks.listing import measure_admin, measure_create, measure_list
from benchmarks.report import Results, log
from benchmarks.upload import (
    measure_inspection,
    measure_limits,
    measure_upload,
    upload_budgets,
)
from tests.live import ROOT, Registry, running_registry, throwaway_postgres

SECTIONS = ("limits", "upload", "download", "create", "list", "admin", "scrub")
# The in-process steps (benchmarks/tasks.py) use Django's test client, whose host is
# "testserver".
SERVER_ENV = {"ALLOWED_HOSTS": "127.0.0.1,localhost,testserver"}


def measure_scrub(res: Results, registry: Registry, db, n, repeat) -> None:
    rates = []
    for _ in range(repeat):
        out = task(registry, "scrub", n=n)
        if out["scrubbed"] != n or out["files_left"]:
            raise RuntimeError(f"scrub did not finish: {out}")
        rates.append(out["per_second"])
    res.add("scrub", f"{db} {n:,} pending_delete images, 1 KiB data each", "images/s", rates)
    res.budget(
        f"scrub {db}: images per second (median)", statistics.median(rates), 500, min(rates) >= 500
    )


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
    put_rates = None
    try:
        files = {}
        if only & {"limits", "upload", "download"}:
            for label, size in sizes.items():
                files[label] = tmp / f"random-{label}.bin"
                make_file(files[label], size)
        if "limits" in only:
            measure_limits(res, files, repeat)

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
                api = Api(registry.port, registry.tokens[USER])
                res.facts[f"idle_rss_mib_{db}"] = tree_rss(registry) / MiB
                if db == dbs[0]:
                    if "upload" in only:
                        measure_upload(res, registry, api, files, repeat, args.profile, tmp)
                        measure_inspection(res, registry, api, files, repeat, tmp)
                    if "download" in only:
                        measure_download(res, registry, api, files, repeat, tmp)
                    if "create" in only:
                        measure_create(res, registry, creates, repeat)
                    if "upload" in only and "limits" in only:
                        # The store's own ceiling, in-process (no HTTP), on this store.
                        big = files[max(files, key=lambda k: files[k].stat().st_size)]
                        put = task(registry, "put", file=str(big), repeat=repeat)
                        put_rates = put["mib_per_s"]
                if "list" in only or "admin" in only:
                    measure_list(res, registry, db, list_sizes, requests, args.profile, tmp)
                if "admin" in only:
                    measure_admin(res, registry, db, list_sizes[-1], requests)
                if "scrub" in only:
                    measure_scrub(res, registry, db, scrub_n, repeat)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
