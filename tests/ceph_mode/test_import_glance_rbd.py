"""import_glance with Glance's rbd store (issue 15) against a real Ceph: a Glance
database migrated by Glance's own `glance-manage db_sync` (no Glance server), filled
with SQL, its bytes put in RBD with Ceph's own `rbd` tool the way Glance's rbd store
lays them out (format 2, 8 MiB objects, layering, snapshot `snap` protected), then
`manage.py import_glance` run beside a live registry on RBD, and every claim checked
with `rbd` and through the API."""

import hashlib
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.glance import missing as glance_missing
from tests.glance import prepared_glance
from tests.live import ROOT, fresh_deployment, run_manage, running_registry
from tests.suites import skip_unless_available

OURS = "import-ours"  # our store's pool
GLANCE = "import-glance"  # Glance's own pool, another one on the same cluster
MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _glance_installed():
    skip_unless_available(glance_missing(), "REQUIRE_GLANCE")


@pytest.fixture(scope="module")
def registry(ceph, tmp_path_factory):
    ceph.pool_env(GLANCE)
    env = {**ceph.pool_env(OURS), "IMAGES_SCRUB_DELAY_SECONDS": "0"}
    with running_registry(tmp_path_factory.mktemp("registry-rbd-import"), env=env) as server:
        yield server


@pytest.fixture(scope="module")
def empty_glance(tmp_path_factory):
    """Glance 33's schema, migrated once; each test fills a copy."""
    if glance_missing():
        pytest.skip(glance_missing())
    peer = prepared_glance(tmp_path_factory.mktemp("glance-schema"))
    with sqlite3.connect(peer.database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return peer.database


class Glance:
    """A Glance database with rows inserted as Glance writes them, and its bytes in
    RBD as Glance's rbd store writes them."""

    def __init__(self, ceph, database, folder):
        self.ceph = ceph
        self.database = database
        self.folder = folder
        self.url = f"sqlite:///{database}"

    def rbd_image(self, pool: str, name: str, data: bytes, *, snapshot: bool = True) -> None:
        source = self.folder / f"{name}.raw"
        source.write_bytes(data)
        layout = ("--image-format", "2", "--order", "23", "--image-feature", "layering")
        self.ceph.run("rbd", "import", "--no-progress", *layout, str(source), f"{pool}/{name}")
        source.unlink()
        if snapshot:
            self.ceph.run("rbd", "snap", "create", f"{pool}/{name}@snap")
            self.ceph.run("rbd", "snap", "protect", f"{pool}/{name}@snap")

    def add(self, data: bytes, url: str, *, image_id: str, checksum: str | None = None) -> None:
        stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
        row = {
            "id": image_id,
            "name": f"rbd-{image_id[:8]}",
            "size": len(data),
            "status": "active",
            "created_at": stamp,
            "updated_at": stamp,
            "deleted": 0,
            "disk_format": "raw",
            "container_format": "bare",
            "checksum": checksum or hashlib.md5(data).hexdigest(),
            "owner": "alice",
            "min_disk": 0,
            "min_ram": 0,
            "protected": 0,
            "virtual_size": len(data),
            "visibility": "private",
            "os_hidden": 0,
            "os_hash_algo": "sha512",
            "os_hash_value": hashlib.sha512(data).hexdigest(),
        }
        columns = ", ".join(row)
        values = ", ".join(f":{c}" for c in row)
        with sqlite3.connect(self.database) as db:
            db.execute(f"INSERT INTO images ({columns}) VALUES ({values})", row)
            db.execute(
                "INSERT INTO image_locations (image_id, value, created_at, updated_at, "
                "deleted, status, meta_data) VALUES (?, ?, ?, ?, 0, 'active', '{}')",
                (image_id, url, stamp, stamp),
            )

    def url_of(self, pool: str, name: str) -> str:
        return f"rbd://{self.ceph.fsid}/{pool}/{name}/snap"


@pytest.fixture
def glance(ceph, empty_glance, tmp_path):
    database = tmp_path / "glance.sqlite"
    shutil.copyfile(empty_glance, database)
    return Glance(ceph, database, tmp_path)


def manage(env: dict[str, str], *args: str) -> tuple[int, str]:
    done = run_manage(env, *args)
    return done.returncode, done.stdout + done.stderr


def import_glance(registry, glance, *flags: str) -> tuple[int, str]:
    return manage(registry.env, "import_glance", "--database-url", glance.url, *flags)


def rbd(ceph, *args: str):
    out = ceph.run("rbd", *args, "--format", "json")
    return json.loads(out) if out.strip() else None


def download(registry, image_id: str) -> bytes:
    request = urllib.request.Request(
        f"{registry.url}/v2/images/{image_id}/file",
        headers={"X-Auth-Token": registry.tokens["alice"]},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def new_id() -> str:
    return str(uuid.uuid4())


def test_import_glance_rbd_copy_from_glance_pool_gives_same_bytes_and_rbd_snapshot(
    registry, glance, ceph
):
    data, legacy_data = bytes(range(256)) * 40_000 + b"tail", b"legacy rbd://<image>" * 999
    image_id, legacy_id = new_id(), new_id()
    glance.rbd_image(GLANCE, image_id, data)
    glance.add(data, glance.url_of(GLANCE, image_id), image_id=image_id)
    glance.rbd_image(GLANCE, legacy_id, legacy_data, snapshot=False)
    glance.add(legacy_data, f"rbd://{legacy_id}", image_id=legacy_id)

    code, out = import_glance(registry, glance, "--copy-data", "--rbd-pool", GLANCE, "--dry-run")
    assert code == 0, out
    assert f"would import 2 of 2 images ({len(data) + len(legacy_data)} bytes" in out
    assert image_id not in rbd(ceph, "ls", OURS)

    code, out = import_glance(registry, glance, "--copy-data", "--rbd-pool", GLANCE)

    assert code == 0, out
    assert f"imported 2 of 2 images ({len(data) + len(legacy_data)} bytes" in out
    assert download(registry, image_id) == data
    assert download(registry, legacy_id) == legacy_data
    for name, size in ((image_id, len(data)), (legacy_id, len(legacy_data))):
        info = rbd(ceph, "info", f"{OURS}/{name}")
        assert (info["size"], info["order"], info["features"]) == (size, 23, ["layering"])
        snaps = rbd(ceph, "snap", "ls", f"{OURS}/{name}")
        assert [(s["name"], s["protected"]) for s in snaps] == [("snap", "true")]
    assert sorted(rbd(ceph, "ls", GLANCE)) == sorted([image_id, legacy_id])  # Glance's stay
    assert registry.manage("verify_store", "--rehash").strip() == "store ok"


def test_import_glance_rbd_copy_into_a_filesystem_store_reads_with_our_ceph_settings(
    glance, ceph, tmp_path
):
    data = b"from Ceph to a plain file" * 9000
    image_id = new_id()
    glance.rbd_image(GLANCE, image_id, data)
    glance.add(data, glance.url_of(GLANCE, image_id), image_id=image_id)
    env = {"IMAGES_RBD_CEPH_CONF": str(ceph.conf)}  # no IMAGES_RBD_POOL: a filesystem store
    (tmp_path / "filesystem").mkdir()
    with fresh_deployment(tmp_path / "filesystem", env=env) as deployment:
        code, out = import_glance(deployment, glance, "--copy-data")
        assert code == 0, out
        store = deployment.env["IMAGES_STORE"]
        assert (Path(store) / image_id).read_bytes() == data
        assert manage(deployment.env, "verify_store", "--rehash") == (0, "store ok\n")


def test_import_glance_rbd_checksum_mismatch_is_skipped_and_leaves_nothing_in_our_pool(
    registry, glance, ceph
):
    data = b"not what Glance recorded" * 10_000
    image_id = new_id()
    glance.rbd_image(GLANCE, image_id, data)
    glance.add(data, glance.url_of(GLANCE, image_id), image_id=image_id, checksum="0" * 32)

    code, out = import_glance(registry, glance, "--copy-data")

    assert code == 1
    assert f"skipped {image_id}: checksum mismatch: Glance records {'0' * 32}" in out
    assert image_id not in rbd(ceph, "ls", OURS)
    assert registry.manage("verify_store").strip() == "store ok"


def test_import_glance_rbd_adopt_in_our_pool_records_in_place_and_scrub_removes_it(
    registry, glance, ceph
):
    data = b"adopted where it lies" * 5000
    image_id = new_id()
    glance.rbd_image(OURS, image_id, data)  # Glance's pool is ours
    glance.add(data, glance.url_of(OURS, image_id), image_id=image_id)
    before = sorted(rbd(ceph, "ls", OURS))

    code, out = import_glance(registry, glance, "--adopt-data")

    assert code == 0, out
    assert "data adopted" in registry.manage("shell", "-c", HISTORY.format(image_id=image_id))
    assert sorted(rbd(ceph, "ls", OURS)) == before  # no copy
    assert download(registry, image_id) == data
    assert registry.manage("verify_store", "--rehash").strip() == "store ok"

    request = urllib.request.Request(
        f"{registry.url}/v2/images/{image_id}",
        method="DELETE",
        headers={"X-Auth-Token": registry.tokens["alice"]},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 204
    assert registry.manage("scrub_images").startswith("scrubbed 1, failed 0")
    assert image_id not in rbd(ceph, "ls", OURS)


HISTORY = (
    "from images.models import ImageTransition; "
    "print(ImageTransition.objects.get(image_id='{image_id}').reason)"
)


def test_import_glance_rbd_copy_from_our_own_pool_is_refused_for_adopt(registry, glance, ceph):
    data = b"already in our pool" * 3000
    image_id = new_id()
    glance.rbd_image(OURS, image_id, data)
    glance.add(data, glance.url_of(OURS, image_id), image_id=image_id)

    code, out = import_glance(registry, glance, "--copy-data")

    assert code == 1
    assert (
        f"skipped {image_id}: {glance.url_of(OURS, image_id)} is in our own RBD pool ({OURS}): "
        "it cannot be copied onto itself; use --adopt-data"
    ) in out
    snaps = rbd(ceph, "snap", "ls", f"{OURS}/{image_id}")
    assert [(s["name"], s["protected"]) for s in snaps] == [("snap", "true")]  # untouched
    code, out = import_glance(registry, glance, "--adopt-data")  # as it advises
    assert code == 0, out
    assert download(registry, image_id) == data


def test_import_glance_rbd_rerun_replaces_the_leftover_of_an_interrupted_copy(
    registry, glance, ceph
):
    data = b"copied again" * 7000
    image_id = new_id()
    glance.rbd_image(GLANCE, image_id, data)
    glance.add(data, glance.url_of(GLANCE, image_id), image_id=image_id)
    ceph.run("rbd", "create", "--size", "1M", f"{OURS}/{image_id}")  # a killed copy's

    code, out = import_glance(registry, glance, "--copy-data")

    assert code == 0, out
    assert f"{image_id}: replaced RBD image {image_id} left by an interrupted copy" in out
    assert download(registry, image_id) == data
    assert rbd(ceph, "info", f"{OURS}/{image_id}")["size"] == len(data)
    assert registry.manage("verify_store", "--rehash").strip() == "store ok"


def test_import_glance_rbd_leftover_named_by_a_location_of_ours_is_kept(registry, glance, ceph):
    # Image A adopted from our pool under the RBD name B's id: A's location names it.
    data, other = b"adopted under another name" * 3000, b"B's own bytes" * 3000
    a_id, b_id = new_id(), new_id()
    glance.rbd_image(OURS, b_id, data)
    glance.add(data, glance.url_of(OURS, b_id), image_id=a_id)
    assert import_glance(registry, glance, "--adopt-data")[0] == 0
    glance.rbd_image(GLANCE, b_id, other)
    glance.add(other, glance.url_of(GLANCE, b_id), image_id=b_id)

    code, out = import_glance(registry, glance, "--copy-data")

    assert code == 1
    assert f"skipped {b_id}: RBD image {b_id} in our pool belongs to another image" in out
    assert download(registry, a_id) == data


def test_import_glance_rbd_copy_killed_mid_way_completes_on_rerun(registry, glance, ceph):
    import rados  # Ceph's bindings: where they are missing, conftest has skipped
    import rbd as rbd_module

    block = hashlib.sha512(b"large").digest() * (MiB // 64)
    data = block * 128
    image_id = new_id()
    glance.rbd_image(GLANCE, image_id, data)
    glance.add(data, glance.url_of(GLANCE, image_id), image_id=image_id)
    command = [sys.executable, "manage.py", "import_glance", "--database-url", glance.url]
    proc = subprocess.Popen(
        [*command, "--copy-data"],
        cwd=ROOT,
        env=registry.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Watched through Ceph's bindings, not the `rbd` tool: killed within milliseconds
    # of the copy's RBD image appearing, well before its 128 MiB are written.
    cluster = rados.Rados(conffile=str(ceph.conf))
    cluster.connect(timeout=10)
    try:
        with cluster.open_ioctx(OURS) as ioctx:
            deadline = time.monotonic() + 30
            while image_id not in rbd_module.RBD().list(ioctx):  # the copy has begun
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        cluster.shutdown()
    assert image_id in rbd(ceph, "ls", OURS)
    assert rbd(ceph, "snap", "ls", f"{OURS}/{image_id}") == []  # cut short: no snapshot yet

    # The killed process's watch on the RBD image lasts `osd client watch timeout`
    # (5 s here): until then the rerun refuses to touch it and says so.
    deadline = time.monotonic() + 30
    while (result := import_glance(registry, glance, "--copy-data"))[0] != 0:
        assert "run again later" in result[1] and time.monotonic() < deadline, result[1]
        time.sleep(1)
    assert f"{image_id}: replaced RBD image {image_id} left by an interrupted copy" in result[1]
    snaps = rbd(ceph, "snap", "ls", f"{OURS}/{image_id}")
    assert [(s["name"], s["size"], s["protected"]) for s in snaps] == [("snap", len(data), "true")]
    assert registry.manage("verify_store", "--rehash").strip() == "store ok"
