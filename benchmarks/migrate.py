"""import_glance's rate (issue 15): a Glance 33 database of 10,000 images (migrated by
its own `glance-manage db_sync`, then filled with SQL for speed: a mix of statuses,
two tags and two properties each, a member on every tenth, each image with data a
64 KiB file of its own in Glance's file store, plus a few large ones), brought over by
`manage.py import_glance` into a fresh registry three ways: `--dry-run` (reading and
planning), `--adopt-data` (our store pointed at Glance's datadir: records only) and
`--copy-data` (every byte read, hashed, verified and written), the last beside the
machine's md5+sha512 rate over the same bytes.

Each figure is the command's wall time, Django's start included (about a second)."""

import contextlib
import hashlib
import os
import random
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import MiB
from benchmarks.glance_tasks import IMAGE, INSERT_IMAGE, _stamp
from benchmarks.report import Results, log
from benchmarks.upload import python_one_pass
from tests.glance import missing, prepared_glance
from tests.live import fresh_deployment, run_manage

SMALL = 64 * 1024
LARGE = 64 * MiB
LARGE_COUNT = 4


def measure_migrate(res: Results, tmp: Path, *, images: int = 10_000) -> None:
    if problem := missing():
        res.skip(f"import_glance: {problem}")
        return
    peer = prepared_glance(tmp / "glance-source")
    started = time.perf_counter()
    total_bytes, with_data = _seed(peer, images)
    log(
        f"seeded Glance with {images:,} images ({total_bytes / MiB:.0f} MiB) in "
        f"{time.perf_counter() - started:.0f} s"
    )
    url = f"sqlite:///{peer.database}"
    mib = total_bytes / MiB
    runs = {
        "dry-run (--copy-data --dry-run)": ("--copy-data", "--dry-run"),
        "--adopt-data (no copy)": ("--adopt-data",),
        "--copy-data": ("--copy-data",),
    }
    for label, flags in runs.items():
        folder = tmp / f"migrate-{flags[0].strip('-')}-{len(flags)}"
        folder.mkdir()
        env = {"IMAGES_STORE": str(peer.store)} if "--adopt-data" in flags else {}
        with fresh_deployment(folder, env=env) as deployment:
            seconds = _run(deployment.env, url, flags)
        name = f"import_glance {images:,} images {label}"
        res.add("migrate", name, "images/s", [images / seconds], config=f"{mib:.0f} MiB")
        if flags == ("--copy-data",):
            res.add("migrate", f"{name}, data", "MiB/s", [mib / seconds])
    hashing = _one_pass_rate(tmp, with_data)
    res.add("migrate", "python md5+sha512 one pass over 64 MiB", "MiB/s", [hashing], "machine")


def _run(env: dict, url: str, flags: tuple[str, ...]) -> float:
    started = time.perf_counter()
    done = run_manage(env, "import_glance", "--database-url", url, *flags, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"import_glance {' '.join(flags)} failed:\n{done.stdout[-3000:]}")
    summary = [line for line in done.stdout.splitlines() if "import" in line and " of " in line]
    log(summary[-1] if summary else done.stdout.strip()[-300:])
    return seconds


def _one_pass_rate(tmp: Path, sample: Path) -> float:
    path = tmp / "hash-sample.bin"
    with open(path, "wb") as out:
        block = sample.read_bytes()
        for _ in range(LARGE // max(len(block), 1)):
            out.write(block)
    seconds, _ = python_one_pass(path)
    rate = path.stat().st_size / MiB / seconds
    path.unlink()
    return rate


def _seed(peer, images: int) -> tuple[int, Path]:
    """Images as Glance writes them: returns the bytes of data and a 64 KiB sample."""
    rng = random.Random(15)
    block = os.urandom(SMALL)
    now = datetime.now(UTC)
    rows, locations, tags, props, members = [], [], [], [], []
    total = 0
    sample = None
    for i in range(images):
        image_id = str(uuid.uuid4())
        stamp = _stamp(now - timedelta(seconds=i * 37))
        roll = rng.random()
        status = (
            "queued"
            if roll < 0.05
            else "deactivated"
            if roll < 0.08
            else "pending_delete"
            if roll < 0.10
            else "active"
        )
        row = dict(
            IMAGE,
            id=image_id,
            name=f"migrate-{i:05d}",
            status=status,
            created_at=stamp,
            updated_at=stamp,
            owner=f"project-{i % 97}",
            visibility=rng.choice(["private", "shared", "public", "community"]),
            min_disk=rng.randrange(0, 40),
        )
        deleted = status == "pending_delete"
        if deleted:
            row.update(deleted=1, deleted_at=stamp)
        if status != "queued":
            size = LARGE if i < LARGE_COUNT else SMALL
            data = (i.to_bytes(8, "big") + block)[:SMALL]
            path = peer.store / image_id
            with open(path, "wb") as out:
                for _ in range(size // SMALL):
                    out.write(data)
            md5, sha = hashlib.md5(), hashlib.sha512()
            for _ in range(size // SMALL):
                md5.update(data)
                sha.update(data)
            row.update(
                size=size,
                virtual_size=size,
                checksum=md5.hexdigest(),
                os_hash_algo="sha512",
                os_hash_value=sha.hexdigest(),
            )
            location_state = "pending_delete" if deleted else "active"
            locations.append(
                (image_id, f"file://{path}", stamp, stamp, int(deleted), location_state)
            )
            total += size
            if sample is None and size == SMALL:
                sample = path
        rows.append(row)
        child = (stamp, stamp, stamp if deleted else None, int(deleted))
        tags += [(image_id, "bench", *child), (image_id, f"t{i % 50}", *child)]
        props += [(image_id, "hw_disk_bus", "virtio", *child)]
        props += [(image_id, "os_distro", "debian", *child)]
        if i % 10 == 0:
            members.append((image_id, f"project-{(i + 1) % 97}", "accepted", *child))
    with contextlib.closing(sqlite3.connect(peer.database, isolation_level=None)) as db:
        db.execute("BEGIN")
        db.executemany(INSERT_IMAGE, rows)
        db.executemany(
            "INSERT INTO image_locations (image_id, value, created_at, updated_at, deleted, "
            "status, meta_data) VALUES (?, ?, ?, ?, ?, ?, '{}')",
            locations,
        )
        columns = "created_at, updated_at, deleted_at, deleted"
        db.executemany(
            f"INSERT INTO image_tags (image_id, value, {columns}) VALUES (?, ?, ?, ?, ?, ?)",
            tags,
        )
        db.executemany(
            f"INSERT INTO image_properties (image_id, name, value, {columns}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            props,
        )
        db.executemany(
            f"INSERT INTO image_members (image_id, member, status, can_share, {columns}) "
            "VALUES (?, ?, ?, 0, ?, ?, ?, ?)",
            members,
        )
        db.execute("COMMIT")
    return total, sample
