"""Many nodes on one PostgreSQL and one Ceph: tests/test_cluster.py's three nodes
behind nginx, their store RBD on the session's cluster. Uploads and downloads spread
over the nodes, a node SIGKILLed mid-upload (its half-written RBD image removed by
another node's janitor, nothing orphaned in the pool), and three scrubbers over real
RBD images, each removed once."""

import os
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.cluster import running_cluster
from tests.live import _libpq
from tests.test_cluster import (  # noqa: F401  (collected here, with this module's fixtures)
    CLUSTER_ENV,
    Client,
    _cluster_parts,
    _sql,
    _total,
    _wait_for,
    test_cluster_node_killed_mid_upload_its_upload_is_killed_by_another_node,
    test_cluster_uploads_and_downloads_through_nginx_spread_over_every_node,
)

SCRUBBED = 150  # real RBD images, each with a protected snapshot to remove


@pytest.fixture(scope="module")
def cluster(ceph, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster-rbd")
    with running_cluster(tmp, env={**CLUSTER_ENV, **ceph.pool_env("nodes")}) as running:
        yield running


@pytest.fixture
def doomed_cluster(ceph, tmp_path):
    # Its verify_store at the end says no RBD image is left behind in its own pool.
    with running_cluster(tmp_path, env={**CLUSTER_ENV, **ceph.pool_env("doomed")}) as running:
        yield running


def _rbd_names(ceph, pool: str = "nodes") -> set[str]:
    return set(ceph.run("rbd", "ls", pool).split())


def test_cluster_on_rbd_three_scrubbers_remove_each_rbd_image_once(cluster, ceph):
    client = Client(cluster)
    ids = []
    for n in range(SCRUBBED):
        image_id = client.create(f"to-scrub-{n}")
        status, _ = client.request(
            "PUT",
            f"/v2/images/{image_id}/file",
            os.urandom(4096),
            {"Content-Type": "application/octet-stream"},
        )
        assert status == 204
        assert client.request("DELETE", f"/v2/images/{image_id}")[0] == 204
        ids.append(image_id)
    client.close()
    assert set(ids) <= _rbd_names(ceph)  # pending_delete keeps the data
    before = [_total(node, "scrubbed") for node in cluster.nodes]
    # Due now: as if deleted an hour ago (the delay is the scrub clock, not under test).
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    with psycopg.connect(_libpq(cluster.env["DATABASE_URL"]), autocommit=True) as conn:
        sql = "UPDATE images_image SET deleted_at = %s WHERE id = ANY(%s::uuid[])"
        assert conn.execute(sql, (an_hour_ago, ids)).rowcount == SCRUBBED

    def done() -> bool:
        sql = "SELECT count(*) FROM images_image WHERE status = 'deleted' AND id = ANY(%s::uuid[])"
        return _sql(cluster, sql, ids)[0][0] == SCRUBBED

    _wait_for(done, timeout=180, what="the scrubbers to scrub them")

    def reported() -> list[int]:
        totals = [_total(node, "scrubbed") for node in cluster.nodes]
        return [total - start for total, start in zip(totals, before, strict=True)]

    _wait_for(lambda: sum(reported()) >= SCRUBBED, timeout=60, what="the scrubbers' reports")
    time.sleep(2)
    assert sum(reported()) == SCRUBBED, reported()
    rows = _sql(
        cluster,
        "SELECT image_id::text, count(*) FROM images_imagetransition "
        "WHERE operation = 'scrub' AND image_id = ANY(%s::uuid[]) GROUP BY image_id",
        ids,
    )
    assert (len(rows), {n for _, n in rows}) == (SCRUBBED, {1})
    assert not set(ids) & _rbd_names(ceph)
    assert [_total(node, "failed") for node in cluster.nodes] == [0, 0, 0]
    assert cluster.manage("verify_store").strip() == "store ok"
