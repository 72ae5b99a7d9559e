"""What benchmarks/tasks.py does for our registry, done to Glance's database: seeding
images for the list figures, and pending_delete images for `glance-scrubber`.

Rows go straight into the SQLite file with SQL inserts, as `glance-manage db_sync`
laid out the tables (images, image_tags, image_properties, image_locations), shaped
like the rows Glance itself writes for a create, an upload and a delayed delete:
through the API, 100,000 images would take longer than the whole benchmark may.
"""

import contextlib
import hashlib
import os
import random
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta

from benchmarks.common import Target
from tests.glance import Peer

USER = "alice"  # the owner of half the seeded images, as in tasks.py
SEED_PREFIX = "seed-"
SCRUB_PREFIX = "scrub-"
BATCH = 5000

# A row of the images table, as Glance writes it; each insert overrides some columns.
IMAGE = {
    "id": None,
    "name": None,
    "size": None,
    "status": "queued",
    "created_at": None,
    "updated_at": None,
    "deleted_at": None,
    "deleted": 0,
    "disk_format": "raw",
    "container_format": "bare",
    "checksum": None,
    "owner": None,
    "min_disk": 0,
    "min_ram": 0,
    "protected": 0,
    "virtual_size": None,
    "visibility": "shared",
    "os_hidden": 0,
    "os_hash_algo": None,
    "os_hash_value": None,
}
INSERT_IMAGE = (
    f"INSERT INTO images ({', '.join(IMAGE)}) VALUES ({', '.join(':' + c for c in IMAGE)})"
)


def _stamp(when: datetime) -> str:
    """SQLAlchemy's DateTime on SQLite: naive UTC text with microseconds."""
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _connect(peer: Peer):
    return contextlib.closing(sqlite3.connect(peer.database, timeout=60, isolation_level=None))


def _seed_batch(db: sqlite3.Connection, start: int, count: int, now: datetime) -> None:
    """`count` images distributed as tasks.py seeds ours: half alice's, a quarter
    public, the rest private to other projects; 90% active; two tags and a property."""
    rng = random.Random(start)
    images, tags, props = [], [], []
    for i in range(start, start + count):
        r = rng.random()
        if r < 0.5:
            owner, visibility = USER, rng.choice(["private", "shared"])
        elif r < 0.75:
            owner, visibility = f"project-{i % 97}", "public"
        else:
            owner, visibility = f"project-{i % 97}", "private"
        stamp = _stamp(now - timedelta(seconds=i * 37))
        image_id = str(uuid.uuid4())
        status, size, checksum, algo, value = "queued", None, None, None, None
        if rng.random() < 0.9:
            status, size = "active", rng.randrange(1, 20 * 2**30)
            checksum = f"{rng.getrandbits(128):032x}"
            algo, value = "sha512", f"{rng.getrandbits(512):0128x}"
        images.append(
            dict(
                IMAGE,
                id=image_id,
                name=f"{SEED_PREFIX}{i:07d}",
                size=size,
                virtual_size=size,
                status=status,
                created_at=stamp,
                updated_at=stamp,
                disk_format="qcow2",
                checksum=checksum,
                owner=owner,
                min_disk=rng.randrange(0, 40),
                min_ram=rng.randrange(0, 4096),
                visibility=visibility,
                os_hash_algo=algo,
                os_hash_value=value,
            )
        )
        tags += [(image_id, "bench", stamp, stamp, 0), (image_id, f"t{i % 50}", stamp, stamp, 0)]
        props.append((image_id, "hw_disk_bus", "virtio", stamp, stamp, 0))
    db.execute("BEGIN")
    db.executemany(INSERT_IMAGE, images)
    db.executemany(
        "INSERT INTO image_tags (image_id, value, created_at, updated_at, deleted) "
        "VALUES (?, ?, ?, ?, ?)",
        tags,
    )
    db.executemany(
        "INSERT INTO image_properties (image_id, name, value, created_at, updated_at, deleted) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        props,
    )
    db.execute("COMMIT")


def seed(peer: Peer, total: int) -> dict:
    """Bring the seeded images up to `total`."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    with _connect(peer) as db:
        have = db.execute(
            "SELECT count(*) FROM images WHERE name LIKE ?", (f"{SEED_PREFIX}%",)
        ).fetchone()[0]
        while have < total:
            count = min(BATCH, total - have)
            _seed_batch(db, have, count, now)
            have += count
        db.execute("ANALYZE")
    return {"images": have, "seconds": time.perf_counter() - started}


def _seed_pending_delete(peer: Peer, n: int, size: int) -> tuple[str, list[str]]:
    """`n` images as Glance leaves them after a delete with delayed_delete on: the
    image and its location pending_delete and deleted, the data still in the store."""
    payload = os.urandom(size)
    checksum = hashlib.md5(payload).hexdigest()
    sha512 = hashlib.sha512(payload).hexdigest()
    past = datetime.now(UTC) - timedelta(hours=1)
    created, deleted = _stamp(past - timedelta(minutes=5)), _stamp(past)
    run = uuid.uuid4().hex[:8]
    ids, images, locations = [], [], []
    for i in range(n):
        image_id = str(uuid.uuid4())
        ids.append(image_id)
        path = peer.store / image_id
        path.write_bytes(payload)
        images.append(
            dict(
                IMAGE,
                id=image_id,
                name=f"{SCRUB_PREFIX}{run}-{i}",
                size=size,
                virtual_size=size,
                status="pending_delete",
                created_at=created,
                updated_at=deleted,
                deleted_at=deleted,
                deleted=1,
                checksum=checksum,
                os_hash_algo="sha512",
                os_hash_value=sha512,
            )
        )
        locations.append((image_id, f"file://{path}", created, deleted, deleted, 1, "{}"))
    with _connect(peer) as db:
        db.execute("BEGIN")
        db.executemany(INSERT_IMAGE, images)
        db.executemany(
            "INSERT INTO image_locations (image_id, value, created_at, updated_at, "
            "deleted_at, deleted, meta_data, status) VALUES (?, ?, ?, ?, ?, ?, ?, "
            "'pending_delete')",
            locations,
        )
        db.execute("COMMIT")
    return run, ids


def _scrubber(peer: Peer) -> float:
    started = time.perf_counter()
    peer.run("glance-scrubber")
    return time.perf_counter() - started


def scrub(peer: Peer, n: int, size: int = 1024) -> dict:
    """One `glance-scrubber` run (not --daemon) over `n` due pending_delete images with
    `size` bytes of data each. The run's own start (imports, config, store set-up,
    measured by a run with nothing due) is taken off, as ours is timed in-process."""
    idle = _scrubber(peer)
    run, ids = _seed_pending_delete(peer, n, size)
    seconds = _scrubber(peer) - idle
    with _connect(peer) as db:
        statuses = dict(
            db.execute(
                "SELECT status, count(*) FROM images WHERE name LIKE ? GROUP BY status",
                (f"{SCRUB_PREFIX}{run}-%",),
            ).fetchall()
        )
    left = sum((peer.store / image_id).exists() for image_id in ids)
    return {
        "images": n,
        "scrubbed": statuses.get("deleted", 0),
        "statuses": statuses,
        "files_left": left,
        "seconds": seconds,
        "startup_seconds": idle,
        "per_second": n / seconds if seconds > 0 else None,
    }


def glance_target(peer: Peer) -> Target:
    """Glance as a target of the measurements: no token (no Keystone), its own seeding
    and scrubber; no SQL capture."""
    return Target(
        name="glance",
        port=peer.port,
        pid=peer.pid,
        store=peer.store,
        seed=lambda total: seed(peer, total),
        scrub=lambda n: scrub(peer, n),
    )
