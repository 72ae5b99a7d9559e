"""Many nodes, one truth: three registry nodes (gunicorn, scrubber daemon, import
worker each) on one PostgreSQL database and one store, behind nginx, as deploy/
installs them (tests/cluster.py). Three scrubbers share 10,000 due images and each
image is scrubbed once; uploads and downloads through nginx land on every node; a
node killed mid-upload leaves nothing behind that another node's janitor does not
clean up, while the others keep serving.

`make test-cluster` runs these once (marker `cluster`; the SQLite and PostgreSQL
passes leave them out) on a PostgreSQL of its own. Without nginx or PostgreSQL they
skip, or fail with REQUIRE_CLUSTER=1.
"""

import hashlib
import http.client
import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.cluster import Cluster, nginx_binary, running_cluster
from tests.counting_storage import counted_deletes
from tests.live import _libpq, _manage
from tests.soak import report, soak
from tests.suites import skip_unless_available

pytestmark = pytest.mark.cluster

SEEDED = 10_000
STALE_SECONDS = 5  # a dead node's upload is killed this long after its last byte
MiB = 2**20


def _what_is_missing() -> str | None:
    if nginx_binary() is None:
        return "no nginx (apt-get install nginx-light)"
    url = os.environ.get("DATABASE_URL", "")
    servers = Path(os.environ.get("PG_LIB", "/usr/lib/postgresql")).glob("*/bin/initdb")
    if not url.startswith(("postgres://", "postgresql://")) and not any(servers):
        return "no PostgreSQL server binaries (apt-get install postgresql)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _cluster_parts():
    skip_unless_available(_what_is_missing(), "REQUIRE_CLUSTER")


def _store_env(tmp: Path) -> dict[str, str]:
    """Every store delete written down (tests/counting_storage.py), unless the
    environment names a store of its own (S3, RBD): then that one, untouched."""
    if any(os.environ.get(name) for name in ("IMAGES_S3_BUCKET", "IMAGES_RBD_POOL")):
        return {}
    return {
        "IMAGES_STORAGE_BACKEND": "tests.counting_storage.CountingStorage",
        "COUNTING_STORAGE_LOG": str(tmp / "deletes.log"),
    }


CLUSTER_ENV = {
    "IMAGES_SCRUB_DELAY_SECONDS": "60",
    "IMAGES_UPLOAD_STALE_SECONDS": str(STALE_SECONDS),
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    with running_cluster(tmp, env={**CLUSTER_ENV, **_store_env(tmp)}) as running:
        yield running


# --- talking to it -----------------------------------------------------------------------


class Client:
    """One keep-alive connection to nginx, as one user."""

    def __init__(self, cluster: Cluster, user: str = "alice"):
        parts = urlsplit(cluster.url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.token = cluster.tokens[user]

    def request(self, method: str, path: str, body=None, headers=None) -> tuple[int, bytes]:
        all_headers = {"X-Auth-Token": self.token, "Accept": "application/json", **(headers or {})}
        self.conn.request(method, path, body=body, headers=all_headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def create(self, name: str = "spread") -> str:
        body = json.dumps({"name": name, "disk_format": "raw", "container_format": "bare"})
        status, content = self.request(
            "POST", "/v2/images", body, {"Content-Type": "application/json"}
        )
        assert status == 201, content
        return json.loads(content)["id"]

    def image(self, image_id: str) -> dict:
        status, content = self.request("GET", f"/v2/images/{image_id}")
        assert status == 200, content
        return json.loads(content)

    def close(self) -> None:
        self.conn.close()


def _sql(cluster: Cluster, query: str, *params) -> list[tuple]:
    with psycopg.connect(_libpq(cluster.env["DATABASE_URL"]), autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def _wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- three scrubbers, 10,000 images ------------------------------------------------------


SEED_SCRIPT = """
from datetime import datetime
from tests.factories import pending_delete_in_bulk
ids = pending_delete_in_bulk({count}, deleted_at=datetime.fromisoformat({deleted_at!r}))
open({out!r}, "w").write("\\n".join(str(pk) for pk in ids))
"""


def _total(node, what: str) -> int:
    """The sum of one figure over every pass the node's scrubber has reported."""
    return sum(report[what] for report in node.scrub_reports())


def test_cluster_three_scrubbers_scrub_each_of_10000_images_once(cluster, tmp_path):
    before = [_total(node, "scrubbed") for node in cluster.nodes]
    ids_file = tmp_path / "seeded"
    deleted_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    script = SEED_SCRIPT.format(count=SEEDED, deleted_at=deleted_at, out=str(ids_file))
    _manage(cluster.env, "shell", "-v0", "-c", script)
    seeded = set(ids_file.read_text().split())
    assert len(seeded) == SEEDED

    def left() -> int:
        sql = "SELECT count(*) FROM images_image WHERE status = 'pending_delete'"
        return _sql(cluster, sql)[0][0]

    _wait_for(lambda: left() == 0, timeout=240, what="the scrubbers to scrub them all")

    def reported() -> list[int]:
        totals = [_total(node, "scrubbed") for node in cluster.nodes]
        return [total - start for total, start in zip(totals, before, strict=True)]

    # Each scrubber reports at the end of its pass: wait for the passes under way.
    _wait_for(lambda: sum(reported()) >= SEEDED, timeout=60, what="the scrubbers' reports")
    time.sleep(2)  # two more passes of each: nothing more may be reported
    print(f"each scrubber's share of the {SEEDED} images: {reported()}")
    assert sum(reported()) == SEEDED, reported()
    assert len([share for share in reported() if share]) >= 2, reported()  # they overlapped
    assert [_total(node, "failed") for node in cluster.nodes] == [0, 0, 0]
    # One scrub in each image's history, and every image deleted.
    rows = _sql(
        cluster,
        "SELECT t.image_id::text, count(*) FROM images_imagetransition t "
        "WHERE t.operation = 'scrub' GROUP BY t.image_id",
    )
    assert {image_id for image_id, _ in rows} == seeded
    assert {n for _, n in rows} == {1}
    statuses = _sql(cluster, "SELECT status, count(*) FROM images_image GROUP BY status")
    assert dict(statuses).get("deleted") == SEEDED
    # The store was asked to delete each image's bytes once, and none are left.
    log = cluster.env.get("COUNTING_STORAGE_LOG")
    if log:
        deletes = [name for name in counted_deletes(log) if name in seeded]
        assert len(deletes) == SEEDED
        assert set(deletes) == seeded
    assert cluster.manage("verify_store").strip() == "store ok"


# --- uploads and downloads through nginx -------------------------------------------------


def _upload_and_download(cluster: Cluster, results: list, errors: list, count: int) -> None:
    """`count` images through nginx on one keep-alive connection, each in four requests
    (create, upload, read back the record, download): four against nginx's round robin
    of three nodes, so each step lands on every node in turn."""
    client = Client(cluster)
    try:
        for n in range(count):
            data = os.urandom(MiB + 4099 * n)
            md5 = hashlib.md5(data).hexdigest()
            image_id = client.create()
            chunked = n % 2 == 0
            body = (data[i : i + 65536] for i in range(0, len(data), 65536)) if chunked else data
            client.conn.request(
                "PUT",
                f"/v2/images/{image_id}/file",
                body=body,
                headers={"X-Auth-Token": client.token, "Content-Type": "application/octet-stream"},
                encode_chunked=chunked,
            )
            response = client.conn.getresponse()
            response.read()
            image = client.image(image_id)
            status, content = client.request("GET", f"/v2/images/{image_id}/file")
            outcome = (response.status, image["status"], image["checksum"], status, content)
            if outcome != (204, "active", md5, 200, data):
                errors.append(f"{image_id}: {outcome[:4]}, {len(content)} bytes")
            results.append(image_id)
    finally:
        client.close()


def test_cluster_uploads_and_downloads_through_nginx_spread_over_every_node(cluster):
    results: list = []
    errors: list = []
    threads = [
        threading.Thread(target=_upload_and_download, args=(cluster, results, errors, 4))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert (errors, len(results)) == ([], 12)
    served = _served(cluster)
    nodes = {node.address for node in cluster.nodes}
    assert {upstream for method, uri, upstream in served if method == "PUT"} == nodes
    downloads = {up for method, uri, up in served if method == "GET" and uri.endswith("/file")}
    assert downloads == nodes


def _served(cluster: Cluster) -> list[tuple[str, str, str]]:
    """(method, path, node) of each request nginx passed on, from its access log."""
    rows = []
    for line in cluster.access_log.read_text().splitlines():
        request = line.split('"')[1].split()
        upstream = line.rsplit("upstream=", 1)[1].split(", ")[-1]
        rows.append((request[0], request[1], upstream))
    return rows


# --- the soak, against three nodes -------------------------------------------------------


def test_cluster_soak_short_run_has_no_errors_and_loses_no_bytes(tmp_path):
    figures = soak(clients=6, seconds=15, max_requests=50_000, workers=2, tmp=tmp_path, nodes=3)
    summary = report(figures)
    print(summary)  # shown with -s, and on failure
    assert figures["errors"] == [], summary
    assert figures["server_errors"] == 0, summary
    assert figures["operations"]["upload"]["statuses"] == {
        204: figures["operations"]["upload"]["count"]
    }, summary
    assert figures["verified"] > 0, summary
    assert figures["verify_store"] == "store ok", summary


# --- a node dies mid-upload --------------------------------------------------------------


class TrickledUpload(threading.Thread):
    """A chunked upload through nginx that keeps sending a little (so a live node never
    takes it for dead) until told to finish; `outcome` is the status, or the error."""

    def __init__(self, cluster: Cluster, image_id: str):
        super().__init__(name=f"upload-{image_id}")
        self.cluster, self.image_id = cluster, image_id
        self.sending, self.finish = threading.Event(), threading.Event()
        self.sent = hashlib.md5()
        self.outcome: int | str | None = None

    def run(self) -> None:
        parts = urlsplit(self.cluster.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            conn.request(
                "PUT",
                f"/v2/images/{self.image_id}/file",
                body=self._chunks(),
                headers={
                    "X-Auth-Token": self.cluster.tokens["alice"],
                    "Content-Type": "application/octet-stream",
                },
                encode_chunked=True,
            )
            response = conn.getresponse()
            response.read()
            self.outcome = response.status
        except (OSError, http.client.HTTPException) as exc:
            self.outcome = type(exc).__name__
        finally:
            conn.close()

    def _chunks(self):
        self.sending.set()  # the request's headers are out: nginx picks a node now
        first = os.urandom(MiB)
        self.sent.update(first)
        yield first
        while not self.finish.wait(0.2):
            chunk = os.urandom(16384)
            self.sent.update(chunk)
            yield chunk


class Steady(threading.Thread):
    """Reads through nginx, one after another, until stopped: what other users do
    meanwhile. `statuses` counts the answers."""

    def __init__(self, cluster: Cluster, image_id: str):
        super().__init__(name="steady-reader")
        self.cluster, self.image_id = cluster, image_id
        self.stop = threading.Event()
        self.statuses: dict = {}

    def run(self) -> None:
        client = Client(self.cluster)
        paths = ["/v2/images?limit=5", f"/v2/images/{self.image_id}"]
        n = 0
        while not self.stop.is_set():
            try:
                status, _ = client.request("GET", paths[n % 2])
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
                client.close()
                client = Client(self.cluster)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            n += 1
        client.close()


@pytest.fixture
def doomed_cluster(tmp_path):
    """A cluster of its own: one of its nodes is about to die."""
    with running_cluster(tmp_path, env={**CLUSTER_ENV, **_store_env(tmp_path)}) as running:
        yield running


def test_cluster_node_killed_mid_upload_its_upload_is_killed_by_another_node(doomed_cluster):
    cluster = doomed_cluster
    client = Client(cluster)
    readable = client.create("read meanwhile")
    # Six uploads at once and nothing else through nginx meanwhile: each nginx worker
    # passes those it gets to the nodes in turn, and one of its two gets three or
    # more, so every node has one.
    uploads = [TrickledUpload(cluster, client.create("in flight")) for _ in range(6)]
    for upload in uploads:
        upload.start()
    for upload in uploads:
        assert upload.sending.wait(timeout=30)

    def saving() -> bool:  # asked of the database: a request through nginx would count
        ids = [upload.image_id for upload in uploads]
        sql = "SELECT count(*) FROM images_image WHERE status = 'saving' AND id = ANY(%s::uuid[])"
        return _sql(cluster, sql, ids)[0][0] == len(ids)

    _wait_for(saving, timeout=30, what="the uploads to be under way")
    steady = Steady(cluster, readable)
    steady.start()

    dead = cluster.nodes[0]
    dead.kill()
    for upload in uploads:
        upload.finish.set()
    for upload in uploads:
        upload.join(timeout=60)

    print(f"the uploads' answers: {[u.outcome for u in uploads]}")
    lost = [u for u in uploads if u.outcome != 204]
    done = [u for u in uploads if u.outcome == 204]
    assert lost, [u.outcome for u in uploads]  # the dead node's, cut off
    assert done, [u.outcome for u in uploads]  # the live nodes', finished
    for upload in done:
        image = client.image(upload.image_id)
        assert (image["status"], image["checksum"]) == ("active", upload.sent.hexdigest())

    # Another node's janitor finds the dead node's uploads silent and kills them.
    def all_killed():
        return all(client.image(u.image_id)["status"] == "killed" for u in lost)

    _wait_for(all_killed, timeout=STALE_SECONDS + 60, what="the janitor to kill the uploads")
    for upload in lost:
        history = _sql(
            cluster,
            "SELECT source, target, operation, actor FROM images_imagetransition "
            "WHERE image_id = %s ORDER BY created_at DESC, id DESC LIMIT 1",
            upload.image_id,
        )
        assert history == [("saving", "killed", "kill", "scrubber")]

    def kills() -> list[int]:  # reported at the end of each scrubber's pass
        return [_total(node, "killed stale uploads") for node in cluster.nodes]

    _wait_for(lambda: sum(kills()) >= len(lost), timeout=30, what="the scrubbers' reports")
    assert (kills()[0], sum(kills())) == (0, len(lost))  # by the scrubbers of the live nodes

    # The others keep serving: new uploads and downloads through nginx all succeed.
    results: list = []
    errors: list = []
    _upload_and_download(cluster, results, errors, 4)
    assert (errors, len(results)) == ([], 4)
    steady.stop.set()
    steady.join(timeout=30)
    assert set(steady.statuses) == {200}, steady.statuses
    client.close()
    # Nothing orphaned: no partial upload, no bytes without a record.
    assert cluster.manage("verify_store").strip() == "store ok"
