"""import_glance against a real Glance 33: Glance filled through its own API with an
image in every status it reaches, copied by `manage.py import_glance`, then every image
compared through both APIs, field by field and byte by byte; a second run, a run
killed midway, --adopt-data on Glance's own store, --dry-run."""

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.glance import Peer, call, running_glance
from tests.live import ROOT, Registry, fresh_deployment, run_manage, serving

MiB = 1024 * 1024
IMPORT = [sys.executable, "manage.py", "import_glance"]
# Glance's image fields that are ours too; anything else it shows is an extra property.
# `stores` is Glance's multi-store bookkeeping (os_glance_* are its own properties).
NOT_COMPARED = {"stores"}


@dataclass
class Filled:
    """What was made in Glance: ids by label, and the bytes of those with data."""

    peer: Peer
    ids: dict[str, str] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)
    sql_set: list[str] = field(default_factory=list)  # statuses set with SQL, not the API

    @property
    def url(self) -> str:
        return f"sqlite:///{self.peer.database}"


def _ok(status: int, body: bytes, *expected: int) -> bytes:
    assert status in expected, f"{status}: {body[:500]!r}"
    return body


def _create(peer: Peer, **fields) -> str:
    fields = {"disk_format": "raw", "container_format": "bare", "owner": "alice", **fields}
    body = _ok(*call(peer.url, "POST", "/v2/images", fields), 201)
    return json.loads(body)["id"]


def _upload(peer: Peer, image_id: str, data: bytes) -> None:
    headers = {"Content-Length": str(len(data))}
    put = call(
        peer.url,
        "PUT",
        f"/v2/images/{image_id}/file",
        data,
        content_type="application/octet-stream",
        headers=headers,
    )
    _ok(*put, 204)


def _fill(peer: Peer) -> Filled:
    filled = Filled(peer=peer)

    def active(label: str, data: bytes, **fields) -> str:
        image_id = _create(peer, name=label, **fields)
        _upload(peer, image_id, data)
        filled.ids[label], filled.data[label] = image_id, data
        return image_id

    active("empty", b"")
    active(
        "small",
        os.urandom(1000),
        tags=["web", "debian"],
        os_distro="debian",
        hw_disk_bus="virtio",
        min_disk=1,
        min_ram=256,
    )
    active("public-protected", os.urandom(3 * MiB + 17), visibility="public", protected=True)
    active("community", os.urandom(4096), visibility="community")
    active("hidden", os.urandom(2048), os_hidden=True, owner="bob")
    shared = active("shared", os.urandom(5000), visibility="shared")
    for member, member_state in (("bob", "accepted"), ("charlie", "pending"), ("dave", "rejected")):
        _ok(*call(peer.url, "POST", f"/v2/images/{shared}/members", {"member": member}), 200)
        if member_state != "pending":
            path = f"/v2/images/{shared}/members/{member}"
            _ok(*call(peer.url, "PUT", path, {"status": member_state}), 200)
    deactivated = active("deactivated", os.urandom(1500))
    _ok(*call(peer.url, "POST", f"/v2/images/{deactivated}/actions/deactivate"), 204)
    # The largest: what the killed run is stopped in the middle of.
    active("large", os.urandom(24 * MiB + 5))
    filled.ids["queued"] = _create(peer, name="queued", tags=["later"], os_type="linux")
    # Staged for glance-direct, not yet imported: uploading (the staged bytes stay behind).
    staged = _create(peer, name="uploading")
    stage = call(
        peer.url,
        "PUT",
        f"/v2/images/{staged}/stage",
        os.urandom(3000),
        content_type="application/octet-stream",
    )
    _ok(*stage, 204)
    filled.ids["uploading"] = staged
    # Deleted with delayed delete on, then scrubbed by Glance's own scrubber: deleted.
    gone = active("deleted", os.urandom(700))
    _ok(*call(peer.url, "DELETE", f"/v2/images/{gone}"), 204)
    peer.run("glance-scrubber")
    del filled.data["deleted"]
    # Deleted after the scrubber ran: pending_delete, its data kept.
    pending = active("pending_delete", os.urandom(900), tags=["restore-me"], purpose="undo")
    _ok(*call(peer.url, "DELETE", f"/v2/images/{pending}"), 204)
    # Glance's API reaches `killed` only when an upload fails in a way a client cannot
    # cause on demand: set with SQL on its database.
    killed = _create(peer, name="killed")
    with contextlib.closing(sqlite3.connect(peer.database)) as db:
        db.execute("UPDATE images SET status = 'killed' WHERE id = ?", (killed,))
        db.commit()
    filled.ids["killed"] = killed
    filled.sql_set.append("killed")
    return filled


# The no-auth context has no roles; these rules want role:admin by default.
POLICY = {"publicize_image": "", "communitize_image": "", "deactivate": "", "reactivate": ""}


@pytest.fixture(scope="module")
def glance(tmp_path_factory):
    with running_glance(tmp_path_factory.mktemp("glance"), policy=POLICY) as peer:
        yield _fill(peer)


def _import(registry_env: dict, url: str, *flags: str) -> subprocess.CompletedProcess:
    return run_manage(registry_env, "import_glance", "--database-url", url, *flags, timeout=300)


@pytest.fixture(scope="module")
def imported(glance, tmp_path_factory):
    """Our registry, after one `import_glance --copy-data` of the Glance; serving."""
    tmp = tmp_path_factory.mktemp("ours")
    with fresh_deployment(tmp) as deployment:
        done = _import(deployment.env, glance.url, "--copy-data")
        assert done.returncode == 0, done.stdout + done.stderr
        with serving(deployment, tmp) as registry:
            yield registry, done.stdout


def _admin(registry: Registry) -> dict:
    return {"X-Auth-Token": registry.tokens["admin"]}


def _get(url: str, path: str, headers: dict | None = None):
    status, body = call(url, "GET", path, headers=headers)
    return status, (json.loads(body) if body and status == 200 and b"{" in body[:1] else body)


def test_glance_import_every_image_equal_through_both_apis(glance, imported):
    registry, _ = imported
    visible = [label for label in glance.ids if label not in ("deleted", "pending_delete")]
    compared_members = []
    for label in visible:
        image_id = glance.ids[label]
        status, theirs = _get(glance.peer.url, f"/v2/images/{image_id}")
        assert status == 200, label
        status, ours = _get(registry.url, f"/v2/images/{image_id}", _admin(registry))
        assert status == 200, label
        theirs = {k: v for k, v in theirs.items() if k not in NOT_COMPARED}
        # Tags are a set (the schema's uniqueItems): Glance lists them as inserted, we
        # sorted.
        theirs["tags"], ours["tags"] = sorted(theirs["tags"]), sorted(ours["tags"])
        assert {k: ours.get(k) for k in theirs} == theirs, label
        members = f"/v2/images/{image_id}/members"
        status, theirs = _get(glance.peer.url, members)
        answer, ours = _get(registry.url, members, _admin(registry))
        assert answer == status, label  # both 403 for images that are not shared
        if status == 200:
            compared_members.append(label)
            assert ours == theirs, label
    assert "shared" in compared_members
    assert (
        len(_get(glance.peer.url, f"/v2/images/{glance.ids['shared']}/members")[1]["members"]) == 3
    )


def test_glance_import_data_equal_byte_for_byte(glance, imported):
    registry, _ = imported
    for label, data in glance.data.items():
        if label == "pending_delete":
            continue
        image_id = glance.ids[label]
        theirs = call(glance.peer.url, "GET", f"/v2/images/{image_id}/file")
        ours = call(registry.url, "GET", f"/v2/images/{image_id}/file", headers=_admin(registry))
        assert theirs == (200, data), label
        assert ours == (200, data), label


STATE_SCRIPT = """
import json
from images.models import Image, ImageTransition
rows = {
    str(i.pk): [i.status, i.deleted_at and i.deleted_at.isoformat(), i.status_before_delete,
                sorted(i.tags.values_list("value", flat=True)),
                list(i.locations.values_list("url", "status"))]
    for i in Image.objects.all()
}
history = list(ImageTransition.objects.values_list("image_id", "target", "operation", "actor"))
print(json.dumps({"images": rows, "history": [[str(h[0]), *h[1:]] for h in history]}))
"""


def _state(env: dict) -> dict:
    done = run_manage(env, "shell", "-c", STATE_SCRIPT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _glance_row(glance: Filled, image_id: str) -> tuple:
    with contextlib.closing(sqlite3.connect(glance.peer.database)) as db:
        return db.execute(
            "SELECT status, deleted_at FROM images WHERE id = ?", (image_id,)
        ).fetchone()


def test_glance_import_pending_delete_and_deleted_keep_their_clock(glance, imported):
    registry, out = imported
    state = _state(registry.env)["images"]
    pending = glance.ids["pending_delete"]
    status, deleted_at = _glance_row(glance, pending)
    assert status == "pending_delete"
    assert state[pending][:4] == [
        "pending_delete",
        deleted_at.replace(" ", "T") + "+00:00",
        "active",
        ["restore-me"],
    ]
    assert state[pending][4] == [[pending, "pending_delete"]]
    listed = _get(registry.url, "/v2/images?status=pending_delete", _admin(registry))[1]
    assert [image["id"] for image in listed["images"]] == [pending]
    gone = glance.ids["deleted"]
    assert _glance_row(glance, gone)[0] == "deleted"
    assert state[gone][0] == "deleted"
    assert state[gone][4] == []
    assert state[glance.ids["killed"]][0] == "killed"
    assert "1 deleted in Glance: brought over as deleted" in out
    assert f"imported {len(glance.ids)} of {len(glance.ids)} images" in out


def test_glance_import_restores_pending_delete_with_its_data(glance, imported):
    registry, _ = imported
    pending = glance.ids["pending_delete"]
    restored = call(
        registry.url, "POST", f"/v2/images/{pending}/actions/restore", headers=_admin(registry)
    )
    assert restored[0] in (200, 204), restored
    ours = call(registry.url, "GET", f"/v2/images/{pending}/file", headers=_admin(registry))
    assert ours == (200, glance.data["pending_delete"])


def _store_files(store: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(store.iterdir())}


def test_glance_import_second_run_changes_nothing(glance, imported):
    registry, _ = imported
    before = (_state(registry.env), _store_files(registry.store))
    again = _import(registry.env, glance.url, "--copy-data")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (_state(registry.env), _store_files(registry.store)) == before
    assert f"imported 0 of {len(glance.ids)} images" in again.stdout
    assert f"already imported {len(glance.ids)}, skipped 0" in again.stdout


def test_glance_import_killed_midway_then_rerun_ends_complete(glance, tmp_path):
    with fresh_deployment(tmp_path) as deployment:
        store = Path(deployment.env["IMAGES_STORE"])
        proc = subprocess.Popen(
            [*IMPORT, "--copy-data", "--database-url", glance.url],
            cwd=ROOT,
            env=deployment.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        large = glance.ids["large"]
        deadline = time.monotonic() + 60
        # Killed while the largest image's bytes are on their way in.
        while not (store / f"{large}.partial").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, "the import finished before it could be killed"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        midway = _state(deployment.env)["images"]
        assert large not in midway
        assert 0 < len(midway) < len(glance.ids) or (store / f"{large}.partial").exists()
        rerun = _import(deployment.env, glance.url, "--copy-data")
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        final = _state(deployment.env)["images"]
        assert sorted(final) == sorted(glance.ids.values())
        assert f"already imported {len(midway)}, skipped 0" in rerun.stdout
        assert hashlib.md5((store / large).read_bytes()).digest() == (
            hashlib.md5(glance.data["large"]).digest()
        )
        assert deployment.manage("verify_store", "--rehash").strip() == "store ok"


def test_glance_import_adopt_serves_glance_files_without_copy(glance, tmp_path):
    before = _store_files(glance.peer.store)
    env = {"IMAGES_STORE": str(glance.peer.store)}
    with fresh_deployment(tmp_path, env=env) as deployment:
        done = _import(deployment.env, glance.url, "--adopt-data")
        assert done.returncode == 0, done.stdout + done.stderr
        assert _store_files(glance.peer.store) == before  # nothing copied, nothing moved
        assert deployment.manage("verify_store").strip() == "store ok"
        with serving(deployment, tmp_path) as registry:
            for label, data in glance.data.items():
                if label == "pending_delete":
                    continue
                path = f"/v2/images/{glance.ids[label]}/file"
                assert call(registry.url, "GET", path, headers=_admin(registry)) == (200, data)


def test_glance_import_dry_run_changes_nothing(glance, tmp_path):
    with fresh_deployment(tmp_path) as deployment:
        done = _import(deployment.env, glance.url, "--copy-data", "--dry-run")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"would import {len(glance.ids)} of {len(glance.ids)} images" in done.stdout
        assert _state(deployment.env) == {"images": {}, "history": []}
        assert list(Path(deployment.env["IMAGES_STORE"]).glob("*")) == []


def test_glance_import_bad_input_one_line(glance, tmp_path):
    with fresh_deployment(tmp_path) as deployment:
        wrong = [
            ("--copy-data", "--adopt-data"),
            ("--database-url", f"sqlite:///{glance.peer.dir}/nothing-here.sqlite"),
            ("--database-url", "postgresql://glance:secret@127.0.0.1:1/glance"),
        ]
        for args in wrong:
            if "--database-url" not in args:
                args = ("--database-url", glance.url, *args)
            done = run_manage(deployment.env, "import_glance", *args)
            assert done.returncode != 0, args
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
            assert "secret" not in done.stderr
        assert _state(deployment.env)["images"] == {}
