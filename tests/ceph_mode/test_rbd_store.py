"""The RBD store against a real Ceph: the production server with IMAGES_RBD_POOL set,
driven by python-glanceclient and plain HTTP, and every claim about RBD checked with
Ceph's own `rbd` tool -- what Nova and an operator would see."""

import hashlib
import io
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from glanceclient import Client
from glanceclient import exc as glance_exc

from tests.live import running_registry, running_worker


@pytest.fixture(scope="module")
def registry(ceph, tmp_path_factory):
    env = {**ceph.env, "IMAGES_SCRUB_DELAY_SECONDS": "0", "IMAGES_SHOW_DIRECT_URL": "1"}
    with running_registry(tmp_path_factory.mktemp("registry-rbd"), env=env) as server:
        yield server


@pytest.fixture
def gc(registry):
    return Client(endpoint=f"{registry.url}/v2", token=registry.tokens["alice"])


def rbd(ceph, *args: str):
    """`rbd ... --format json` on the test cluster, parsed."""
    out = ceph.run("rbd", *args, "--format", "json")
    return json.loads(out) if out.strip() else None


def rbd_images(ceph) -> list[str]:
    return rbd(ceph, "ls", ceph.pool)


def _create(gc, name="rbd", disk_format="raw"):
    return gc.images.create(name=name, disk_format=disk_format, container_format="bare")


def _put(registry, image_id, data: bytes, **headers) -> int:
    """An upload with Content-Length (its size declared), as curl sends it."""
    request = urllib.request.Request(
        f"{registry.url}/v2/images/{image_id}/file",
        data=data,
        method="PUT",
        headers={
            "X-Auth-Token": registry.tokens["alice"],
            "Content-Type": "application/octet-stream",
            **headers,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def clone(ceph):
    """Clones made in a test, removed after it: what Nova does with an image."""
    made = []

    def make(image_id: str) -> str:
        name = f"{ceph.pool}/disk-{uuid.uuid4().hex[:8]}"
        ceph.run("rbd", "clone", f"{ceph.pool}/{image_id}@snap", name)
        made.append(name)
        return name

    yield make
    for name in made:
        subprocess.run(["rbd", "-c", str(ceph.conf), "rm", "--no-progress", name], check=False)


def test_rbd_chunked_upload_is_an_rbd_image_with_a_protected_snapshot_nova_clones(gc, ceph, clone):
    data = os.urandom(20 * 1024 * 1024 + 5)  # size unknown: the image grows in steps
    image = _create(gc)
    gc.images.upload(image["id"], io.BytesIO(data))

    shown = gc.images.get(image["id"])
    assert (shown["status"], shown["size"]) == ("active", len(data))
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert shown["direct_url"] == f"rbd://{ceph.fsid}/{ceph.pool}/{image['id']}/snap"
    info = rbd(ceph, "info", f"{ceph.pool}/{image['id']}")
    assert (info["size"], info["order"], info["features"]) == (len(data), 23, ["layering"])
    snaps = rbd(ceph, "snap", "ls", f"{ceph.pool}/{image['id']}")
    assert [(s["name"], s["size"], s["protected"]) for s in snaps] == [("snap", len(data), "true")]
    disk = clone(image["id"])
    assert rbd(ceph, "info", disk)["parent"]["image"] == image["id"]
    assert b"".join(gc.images.data(image["id"])) == data  # verified against os_hash_value


def test_rbd_declared_size_upload_and_ranged_download(gc, registry, ceph):
    data = os.urandom(9 * 1024 * 1024 + 77)
    image = _create(gc)
    assert _put(registry, image["id"], data) == 204
    assert rbd(ceph, "info", f"{ceph.pool}/{image['id']}")["size"] == len(data)
    request = urllib.request.Request(
        f"{registry.url}/v2/images/{image['id']}/file",
        headers={"X-Auth-Token": registry.tokens["alice"], "Range": "bytes=8388000-8390000"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 8388000-8390000/{len(data)}"
        assert response.read() == data[8388000:8390001]


def test_rbd_delete_restore_and_scrub_each_leave_rbd_as_they_should(gc, registry, ceph):
    image = _create(gc)
    gc.images.upload(image["id"], io.BytesIO(b"kept until scrubbed" * 1000))
    rita = Client(endpoint=f"{registry.url}/v2", token=registry.tokens["rita"])

    gc.images.delete(image["id"])
    assert rita.images.get(image["id"])["status"] == "pending_delete"
    snaps = rbd(ceph, "snap", "ls", f"{ceph.pool}/{image['id']}")
    assert [(s["name"], s["protected"]) for s in snaps] == [("snap", "true")]  # untouched

    rita.http_client.post(f"/v2/images/{image['id']}/actions/restore")
    assert gc.images.get(image["id"])["status"] == "active"
    assert b"".join(gc.images.data(image["id"])) == b"kept until scrubbed" * 1000

    gc.images.delete(image["id"])
    assert registry.manage("scrub_images").startswith("scrubbed 1, failed 0")
    assert image["id"] not in rbd_images(ceph)
    assert registry.manage("verify_store").strip() == "store ok"


def test_rbd_image_with_a_clone_refuses_deletion_and_stays_whole(gc, registry, ceph, clone):
    image = _create(gc)
    gc.images.upload(image["id"], io.BytesIO(b"a golden image"))
    disk = clone(image["id"])

    with pytest.raises(glance_exc.HTTPConflict) as refused:
        gc.images.delete(image["id"])
    assert f"Image {image['id']} could not be deleted because it is in use" in str(refused.value)
    assert gc.images.get(image["id"])["status"] == "active"
    snaps = rbd(ceph, "snap", "ls", f"{ceph.pool}/{image['id']}")
    assert [(s["name"], s["protected"]) for s in snaps] == [("snap", "true")]

    ceph.run("rbd", "rm", "--no-progress", disk)  # the instance is gone
    gc.images.delete(image["id"])
    rita = Client(endpoint=f"{registry.url}/v2", token=registry.tokens["rita"])
    assert rita.images.get(image["id"])["status"] == "pending_delete"


def test_rbd_clone_made_in_the_recycle_bin_keeps_the_image_restorable(gc, registry, ceph, clone):
    image = _create(gc)
    gc.images.upload(image["id"], io.BytesIO(b"cloned behind our back"))
    gc.images.delete(image["id"])
    clone(image["id"])  # straight through Ceph, past the registry

    with pytest.raises(RuntimeError, match="could not be scrubbed") as failed:
        registry.manage("scrub_images")
    assert f"{image['id']} has clones" in str(failed.value)
    rita = Client(endpoint=f"{registry.url}/v2", token=registry.tokens["rita"])
    assert rita.images.get(image["id"])["status"] == "pending_delete"
    assert image["id"] in rbd_images(ceph)
    rita.http_client.post(f"/v2/images/{image['id']}/actions/restore")
    assert b"".join(gc.images.data(image["id"])) == b"cloned behind our back"


def test_rbd_upload_cut_short_leaves_no_rbd_image(gc, registry, ceph):
    image = _create(gc)
    with pytest.raises(glance_exc.HTTPBadRequest, match="Size mismatch"):
        gc.images.upload(image["id"], io.BytesIO(b"x" * 1000), image_size=5000)
    assert gc.images.get(image["id"])["status"] == "queued"
    assert image["id"] not in rbd_images(ceph)


def test_rbd_upload_refused_by_inspection_leaves_no_rbd_image(gc, registry, ceph, tmp_path):
    vmdk = tmp_path / "disk.vmdk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", str(vmdk), "64M"], check=True)
    image = _create(gc, disk_format="qcow2")  # what it claims; what it is, is a vmdk
    assert _put(registry, image["id"], vmdk.read_bytes()) == 415  # as Glance answers
    assert gc.images.get(image["id"])["status"] == "queued"
    assert image["id"] not in rbd_images(ceph)


def test_rbd_verify_store_finds_and_removes_an_orphaned_rbd_image(registry, ceph):
    ceph.run("rbd", "create", "--size", "1M", f"{ceph.pool}/stray-disk")
    with pytest.raises(RuntimeError, match="orphan: stray-disk"):
        registry.manage("verify_store")
    assert "orphan: stray-disk (removed)" in registry.manage("verify_store", "--remove-orphans")
    assert "stray-disk" not in rbd_images(ceph)


def test_rbd_glance_direct_import_stages_in_ceph_and_leaves_one_rbd_image(gc, registry, ceph):
    data = os.urandom(5 * 1024 * 1024 + 9)
    image = _create(gc)
    with running_worker(registry):
        gc.images.stage(image["id"], io.BytesIO(data))
        staged = f"{image['id']}.staged"
        assert staged in rbd_images(ceph)  # where any node's worker can read it
        gc.images.image_import(image["id"], method="glance-direct")
        deadline = time.monotonic() + 60
        while gc.images.get(image["id"])["status"] != "active":
            assert time.monotonic() < deadline, gc.images.get(image["id"])
            time.sleep(0.2)
    assert b"".join(gc.images.data(image["id"])) == data
    names = rbd_images(ceph)
    assert image["id"] in names and staged not in names
