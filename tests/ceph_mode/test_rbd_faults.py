"""The RBD store when Ceph fails under it: a cluster of the test's own (the session's
is shared), its OSD killed, and the registry answering with Glance-style errors,
changing nothing, and still serving what does not need Ceph."""

import io
import os
import signal
import urllib.error
import urllib.request

import pytest
from glanceclient import Client

from tests.ceph import running_ceph
from tests.live import running_registry


@pytest.fixture
def dying_ceph():
    with running_ceph(rgw=False) as cluster:
        yield cluster


def test_rbd_upload_while_the_osd_is_dead_fails_cleanly(dying_ceph, tmp_path):
    env = {**dying_ceph.env, "IMAGES_RBD_OP_TIMEOUT": "3"}
    with running_registry(tmp_path, env=env) as registry:
        gc = Client(endpoint=f"{registry.url}/v2", token=registry.tokens["alice"])
        before = gc.images.create(name="before", disk_format="raw", container_format="bare")
        gc.images.upload(before["id"], io.BytesIO(b"stored while Ceph was well"))

        os.kill(dying_ceph.pid("osd.0"), signal.SIGKILL)
        image = gc.images.create(name="during", disk_format="raw", container_format="bare")
        request = urllib.request.Request(
            f"{registry.url}/v2/images/{image['id']}/file",
            data=os.urandom(3 * 1024 * 1024),
            method="PUT",
            headers={
                "X-Auth-Token": registry.tokens["alice"],
                "Content-Type": "application/octet-stream",
            },
        )
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(request, timeout=120)
        assert failed.value.code == 503
        body = failed.value.read().decode()  # Glance's plain-text error body
        assert "The image store failed while writing the data" in body
        assert "RBD operation timeout" in body

        # Nothing changed, and the server answers what needs no Ceph.
        shown = gc.images.get(image["id"])
        assert (shown["status"], shown["size"], shown["checksum"]) == ("queued", None, None)
        assert {i["name"] for i in gc.images.list()} == {"before", "during"}
        history = registry.manage("shell", "-v0", "-c", HISTORY.format(image_id=image["id"]))
        assert history.split() == ["->queued", "queued->saving", "saving->queued"]


HISTORY = """
from images.models import ImageTransition
for t in ImageTransition.objects.filter(image_id="{image_id}").order_by("id"):
    print(f"{{t.source}}->{{t.target}}")
"""
