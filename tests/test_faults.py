"""Faults, end to end: the production server (gunicorn, several workers) and the real
commands, with failures injected the way they happen — a client that hangs up, a
worker or a scrubber killed with SIGKILL, a store that fails, a disk that fills up,
a database that refuses the write. After each, the image's status tells the truth,
no bytes are left that nobody owns, and no bytes that somebody owns are gone.
"""

import hashlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.live import ROOT, Registry, _libpq, running_registry

# Short enough to wait out in a test, long enough (heartbeat every 0.75 s) that a
# healthy upload on a busy CI machine is never taken for a dead one.
STALE_SECONDS = 3
FAILING_STORE = {"IMAGES_STORAGE_BACKEND": "tests.failing_storage.FailingStorage"}


# --- talking to the server --------------------------------------------------------------


def request(registry: Registry, method, path, *, user="alice", body=None, headers=None):
    """One HTTP request; returns (status, body bytes)."""
    parts = urlsplit(registry.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        all_headers = {"X-Auth-Token": registry.tokens[user], "Accept": "application/json"}
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def create_image(registry: Registry, *, user="alice", name="fault") -> str:
    status, body = request(
        registry,
        "POST",
        "/v2/images",
        user=user,
        body={"name": name, "disk_format": "raw", "container_format": "bare"},
    )
    assert status == 201, body
    return json.loads(body)["id"]


def upload(registry: Registry, image_id: str, data: bytes, *, user="alice"):
    return request(
        registry,
        "PUT",
        f"/v2/images/{image_id}/file",
        user=user,
        body=data,
        headers={"Content-Type": "application/octet-stream"},
    )


def active_image(registry: Registry, data: bytes, *, name="fault") -> str:
    image_id = create_image(registry, name=name)
    status, body = upload(registry, image_id, data)
    assert status == 204, body
    return image_id


def download(registry: Registry, image_id: str) -> bytes:
    status, body = request(registry, "GET", f"/v2/images/{image_id}/file")
    assert status == 200, body
    return body


def open_upload(registry: Registry, image_id: str, *, chunked: bool, total: int) -> socket.socket:
    """Start a PUT /file on a raw socket and send its headers only."""
    parts = urlsplit(registry.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    sock.sendall(
        (
            f"PUT /v2/images/{image_id}/file HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\n"
            f"X-Auth-Token: {registry.tokens['alice']}\r\n"
            "Content-Type: application/octet-stream\r\n"
            f"{framing}\r\n\r\n"
        ).encode()
    )
    return sock


def send_body(sock: socket.socket, data: bytes, *, chunked: bool) -> None:
    sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)


# --- looking at the database, the store and the processes ----------------------------


class Database:
    """Read-only SQL on the server's database, for polling between steps."""

    def __init__(self, registry: Registry):
        url = registry.env["DATABASE_URL"]
        self.sqlite = url.startswith("sqlite:")
        if self.sqlite:
            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=20)
        else:
            import psycopg

            self.conn = psycopg.connect(_libpq(url), autocommit=True)

    def key(self, image_id: str):
        # Django keeps a UUID as 32 hex digits in SQLite, as a uuid in PostgreSQL.
        return uuid.UUID(image_id).hex if self.sqlite else image_id

    def rows(self, sql: str, *params):
        if self.sqlite:
            sql = sql.replace("%s", "?")
        cursor = self.conn.execute(sql, params)
        rows = cursor.fetchall()
        if self.sqlite:
            self.conn.commit()  # end the read, or the WAL cannot move on
        return rows

    def status(self, image_id: str) -> str:
        return self.rows("SELECT status FROM images_image WHERE id = %s", self.key(image_id))[0][0]

    def scrub_started(self, image_id: str) -> bool:
        sql = "SELECT scrub_started_at FROM images_image WHERE id = %s"
        return self.rows(sql, self.key(image_id))[0][0] is not None

    def last_transition(self, image_id: str) -> tuple[str, str, str, str, str]:
        return self.rows(
            "SELECT source, target, operation, actor, reason FROM images_imagetransition "
            "WHERE image_id = %s ORDER BY created_at DESC, id DESC LIMIT 1",
            self.key(image_id),
        )[0]

    def close(self):
        self.conn.close()


def wait_for(predicate, *, timeout=15.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def store_files(registry: Registry) -> set[str]:
    return {path.name for path in registry.store.iterdir()} if registry.store.exists() else set()


def temp_files(registry: Registry) -> list[str]:
    return sorted(str(path) for path in Path(registry.env["TMPDIR"]).rglob("*"))


def worker_serving(registry: Registry, sock: socket.socket) -> int:
    """The pid of the gunicorn worker holding the server end of this connection."""
    client_port = sock.getsockname()[1]
    server_port = urlsplit(registry.url).port
    wanted = (f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}")
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == wanted:
            inode = fields[9]
    assert inode, "the server end of the connection is not in /proc/net/tcp"
    for pid in registry.workers():
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except FileNotFoundError:
                continue
    raise AssertionError("no worker holds the connection")


def command(registry: Registry, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**registry.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_command(registry: Registry, *args: str, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**registry.env, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A killed child of gunicorn is a zombie until the master reaps it, which may
    # happen while /proc is read (ESRCH, ProcessLookupError).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Our own server: four workers, a short stale-upload window."""
    tmp = tmp_path_factory.mktemp("faults")
    env = {"IMAGES_UPLOAD_STALE_SECONDS": str(STALE_SECONDS)}
    with running_registry(tmp, workers=4, threads=2, env=env) as registry:
        yield registry


@pytest.fixture
def db(server):
    database = Database(server)
    yield database
    database.close()


# --- the client goes away ---------------------------------------------------------------

MiB = 2**20


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_upload_client_disconnect_requeues_and_leaves_nothing(server, db, chunked):
    image_id = create_image(server)
    sock = open_upload(server, image_id, chunked=chunked, total=4 * MiB)
    send_body(sock, os.urandom(2 * MiB), chunked=chunked)
    partial = server.store / f"{image_id}.partial"
    wait_for(lambda: partial.exists() and partial.stat().st_size > 0, what="the partial file")
    assert db.status(image_id) == "saving"
    sock.close()

    wait_for(lambda: db.status(image_id) == "queued", what="the image to go back to queued")
    source, target, operation, actor, reason = db.last_transition(image_id)
    assert (source, target, operation, actor) == ("saving", "queued", "upload_failed", "alice")
    assert reason.startswith("The client stopped sending after 2097152 bytes: ")
    if not chunked:
        assert reason.endswith(
            "the connection closed 2097152 bytes before the end of the body "
            "(Content-Length 4194304)"
        )
    assert not partial.exists()
    assert not (server.store / image_id).exists()
    assert temp_files(server) == []
    # The client may retry, and the retry works.
    data = os.urandom(MiB + 7)
    assert upload(server, image_id, data)[0] == 204
    assert download(server, image_id) == data


# --- a worker dies ----------------------------------------------------------------------


def test_upload_worker_killed_is_killed_by_janitor_and_others_upload_meanwhile(server, db):
    image_id = create_image(server)
    sock = open_upload(server, image_id, chunked=False, total=8 * MiB)
    send_body(sock, os.urandom(2 * MiB), chunked=False)
    partial = server.store / f"{image_id}.partial"
    wait_for(lambda: partial.exists() and partial.stat().st_size > 0, what="the partial file")
    worker = worker_serving(server, sock)
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: gone(worker), what="the worker to die")
    sock.close()

    # Nothing noticed yet: like Glance, the image sits in saving with its partial data...
    assert db.status(image_id) == "saving"
    assert partial.exists()
    # ...while the other workers (and the worker gunicorn starts instead) keep serving.
    data = os.urandom(3 * MiB + 1)
    fresh = active_image(server, data, name="meanwhile")
    assert download(server, fresh) == data

    time.sleep(STALE_SECONDS + 0.5)
    done = command(server, "scrub_images")
    assert done.returncode == 0, done.stderr
    assert "killed stale uploads 1," in done.stdout
    assert db.status(image_id) == "killed"
    assert db.last_transition(image_id) == (
        "saving",
        "killed",
        "kill",
        "scrubber",
        f"no upload progress for {STALE_SECONDS} seconds; the worker receiving it is gone",
    )
    assert not partial.exists()
    assert db.status(fresh) == "active"
    verify = command(server, "verify_store", "--rehash")
    assert (verify.returncode, verify.stdout.strip()) == (0, "store ok"), verify.stdout


def test_upload_worker_killed_between_write_and_commit_leaves_no_file(server, db):
    """The bytes are renamed into place, the worker waits for the database to record
    them, and dies there. The janitor must remove the whole object, not only a partial."""
    image_id = create_image(server)
    data = os.urandom(64 * 1024)
    sock = open_upload(server, image_id, chunked=False, total=len(data))
    wait_for(lambda: db.status(image_id) == "saving", what="the upload to start")
    # Hold the write lock (SQLite) or the image row (PostgreSQL), so the worker blocks
    # on recording the upload once its bytes are in place.
    blocker = Database(server)
    if blocker.sqlite:
        blocker.conn.execute("BEGIN IMMEDIATE")
    else:
        blocker.conn.autocommit = False
        blocker.conn.execute(
            "SELECT id FROM images_image WHERE id = %s FOR UPDATE", (blocker.key(image_id),)
        )
    try:
        send_body(sock, data, chunked=False)
        stored = server.store / image_id
        wait_for(stored.exists, what="the bytes to be renamed into place")
        worker = worker_serving(server, sock)
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: gone(worker), what="the worker to die")
    finally:
        blocker.conn.rollback()
        blocker.close()
    sock.close()
    assert db.status(image_id) == "saving"
    assert stored.read_bytes() == data  # whole, renamed, and recorded nowhere

    time.sleep(STALE_SECONDS + 0.5)
    done = command(server, "scrub_images")
    assert done.returncode == 0, done.stderr
    assert db.status(image_id) == "killed"
    assert not stored.exists()
    assert not (server.store / f"{image_id}.partial").exists()
    verify = command(server, "verify_store")
    assert (verify.returncode, verify.stdout.strip()) == (0, "store ok"), verify.stdout


# --- the database fails -----------------------------------------------------------------

FAIL_LOCATION_INSERT = {
    True: [
        "CREATE TRIGGER fail_location BEFORE INSERT ON images_imagelocation "
        "BEGIN SELECT RAISE(ABORT, 'injected database failure'); END",
    ],
    False: [
        "CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'injected database failure'; END $$",
        "CREATE TRIGGER fail_location BEFORE INSERT ON images_imagelocation "
        "FOR EACH ROW EXECUTE FUNCTION fail_insert()",
    ],
}
UNDO_FAIL_LOCATION_INSERT = {
    True: ["DROP TRIGGER fail_location"],
    False: ["DROP TRIGGER fail_location ON images_imagelocation", "DROP FUNCTION fail_insert()"],
}


def _execute(registry: Registry, statements: list[str]) -> None:
    script = "from django.db import connection\nwith connection.cursor() as cursor:\n" + "".join(
        f"    cursor.execute({statement!r})\n" for statement in statements
    )
    registry.manage("shell", "-c", script)


def test_upload_database_failure_after_write_leaves_no_file(server, db):
    image_id = create_image(server)
    _execute(server, FAIL_LOCATION_INSERT[db.sqlite])
    try:
        status, _ = upload(server, image_id, os.urandom(MiB))
    finally:
        _execute(server, UNDO_FAIL_LOCATION_INSERT[db.sqlite])
    assert status == 500  # not a refusal the API knows: Django's 500, logged as a bug
    assert db.status(image_id) == "queued"
    source, target, operation, _, reason = db.last_transition(image_id)
    assert (source, target, operation) == ("saving", "queued", "upload_failed")
    assert reason.startswith("recording the upload failed: ")
    assert "injected database failure" in reason
    assert not (server.store / image_id).exists()
    assert not (server.store / f"{image_id}.partial").exists()


# --- the store fails --------------------------------------------------------------------


def test_upload_store_write_failure_answers_503_and_leaves_nothing(tmp_path):
    env = {**FAILING_STORE, "FAILING_STORAGE": "writes"}
    with running_registry(tmp_path, env=env) as registry:
        image_id = create_image(registry)
        status, body = upload(registry, image_id, os.urandom(MiB + MiB // 2))
        assert status == 503
        assert json.loads(body) == {
            "message": "The image store failed while writing the data: "
            "[Errno 5] Input/output error (injected)",
            "code": "503 Service Unavailable",
            "title": "Service Unavailable",
        }
        database = Database(registry)
        assert database.status(image_id) == "queued"
        assert database.last_transition(image_id)[:3] == ("saving", "queued", "upload_failed")
        database.close()
        assert store_files(registry) == set()
        assert temp_files(registry) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB tmpfs: a disk that fills up."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_upload_full_disk_answers_413_and_leaves_nothing(tmp_path, tiny_disk):
    with running_registry(tmp_path, env={"IMAGES_STORE": str(tiny_disk)}) as registry:
        image_id = create_image(registry)
        status, body = upload(registry, image_id, os.urandom(3 * MiB))
        assert status == 413
        assert json.loads(body)["message"] == (
            "Image storage media is full: there is no space left for this image."
        )
        database = Database(registry)
        assert database.status(image_id) == "queued"
        database.close()
        assert list(tiny_disk.iterdir()) == []
        # The space is free again: an image that fits goes in.
        data = os.urandom(MiB)
        assert upload(registry, image_id, data)[0] == 204
        assert (tiny_disk / image_id).read_bytes() == data


# --- the scrubber meets a failing store, or dies ---------------------------------------

SCRUB_NOW = {"IMAGES_SCRUB_DELAY_SECONDS": "0"}


def test_scrub_store_delete_failure_keeps_pending_delete_and_next_run_finishes(server, db):
    data = {active_image(server, os.urandom(10_000 + n)): None for n in range(2)}
    for image_id in data:
        data[image_id] = (server.store / image_id).read_bytes()
        assert request(server, "DELETE", f"/v2/images/{image_id}")[0] == 204
    broken = {**SCRUB_NOW, **FAILING_STORE, "FAILING_STORAGE": "deletes"}

    done = command(server, "scrub_images", env=broken)
    assert done.returncode == 1, done.stderr
    assert "2 image(s) could not be scrubbed" in done.stderr
    for image_id, content in data.items():
        assert f"image {image_id}: data removal failed; will retry" in done.stderr
        assert db.status(image_id) == "pending_delete"
        assert not db.scrub_started(image_id)  # nothing was removed: still restorable
        assert (server.store / image_id).read_bytes() == content
    kept, scrubbed = list(data)
    assert request(server, "POST", f"/v2/images/{kept}/actions/restore", user="rita")[0] == 204
    assert download(server, kept) == data[kept]

    done = command(server, "scrub_images", env=SCRUB_NOW)
    assert done.returncode == 0, done.stderr
    assert "failed 0," in done.stdout
    assert db.status(scrubbed) == "deleted"
    assert db.last_transition(scrubbed)[:4] == ("pending_delete", "deleted", "scrub", "scrubber")
    assert not (server.store / scrubbed).exists()
    assert db.status(kept) == "active"


def test_scrub_killed_mid_run_run_after_lease_finishes_and_nothing_is_lost(server, db):
    live = {active_image(server, os.urandom(5_000 + n), name="live"): None for n in range(3)}
    for image_id in live:
        live[image_id] = (server.store / image_id).read_bytes()
    doomed = [active_image(server, os.urandom(5_000 + n), name="doomed") for n in range(12)]
    for image_id in doomed:
        assert request(server, "DELETE", f"/v2/images/{image_id}")[0] == 204
    slow = {
        **SCRUB_NOW,
        **FAILING_STORE,
        "FAILING_STORAGE": "",
        "FAILING_STORAGE_DELETE_DELAY": "0.3",
    }

    scrubber = start_command(server, "scrub_images", env=slow)
    try:

        def under_way():
            removed = [i for i in doomed if not (server.store / i).exists()]
            claimed = [
                i for i in doomed if db.status(i) == "pending_delete" and db.scrub_started(i)
            ]
            return len(removed) >= 3 and claimed

        wait_for(under_way, timeout=30, what="the scrubber to be under way")
        scrubber.send_signal(signal.SIGKILL)
    finally:
        scrubber.kill()
        scrubber.communicate()
    assert scrubber.returncode == -signal.SIGKILL

    # Half-done: some data gone, and those images cannot come back without it.
    claimed = [i for i in doomed if db.status(i) == "pending_delete" and db.scrub_started(i)]
    assert claimed
    for image_id in claimed:
        status, body = request(
            server, "POST", f"/v2/images/{image_id}/actions/restore", user="rita"
        )
        assert status == 409
        assert json.loads(body)["message"] == (
            f"Image {image_id} cannot be restored: the scrubber has begun removing its data."
        )

    # Within the claim's lease another scrubber leaves them alone: for all it knows the
    # one that claimed them is still at work (on another node).
    done = command(server, "scrub_images", env=SCRUB_NOW)
    assert done.returncode == 0, done.stderr
    assert [i for i in claimed if db.status(i) != "pending_delete"] == []

    # Once the lease is over, the claims are a dead scrubber's: the next run finishes.
    time.sleep(1.1)
    done = command(server, "scrub_images", env={**SCRUB_NOW, "IMAGES_SCRUB_CLAIM_SECONDS": "1"})
    assert done.returncode == 0, done.stderr
    for image_id in doomed:
        assert db.status(image_id) == "deleted"
        assert not (server.store / image_id).exists()
    for image_id, content in live.items():
        assert db.status(image_id) == "active"
        assert download(server, image_id) == content
        assert (
            hashlib.md5(content).hexdigest()
            == json.loads(request(server, "GET", f"/v2/images/{image_id}")[1])["checksum"]
        )
    verify = command(server, "verify_store", "--rehash")
    assert (verify.returncode, verify.stdout.strip()) == (0, "store ok"), verify.stdout
