"""python-glanceclient, as a library, against the real server."""

import hashlib

import pytest
from glanceclient import Client
from glanceclient import exc as glance_exc


@pytest.fixture
def gc(registry):
    return Client(endpoint=f"{registry.url}/v2", token=registry.tokens["alice"])


def test_glanceclient_chunked_upload_and_verified_download(gc, registry, payload_file):
    path, data = payload_file(5 * 1024 * 1024 + 7)
    image = gc.images.create(name="gc-image", disk_format="raw", container_format="bare")
    with open(path, "rb") as f:
        # glanceclient streams this with Transfer-Encoding: chunked and no Content-Length.
        gc.images.upload(image["id"], f, image_size=len(data))

    shown = gc.images.get(image["id"])
    assert shown["status"] == "active"
    assert shown["size"] == len(data)
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert (registry.store / image["id"]).read_bytes() == data

    # The iterator checks os_hash_value as it goes and raises on a mismatch.
    downloaded = b"".join(gc.images.data(image["id"]))
    assert downloaded == data


def test_glanceclient_update_tags_and_properties(gc):
    image = gc.images.create(name="props", disk_format="qcow2", container_format="bare", a="1")
    gc.images.update(image["id"], name="renamed", b="2", remove_props=["a"])
    gc.image_tags.update(image["id"], "blue")

    shown = gc.images.get(image["id"])
    assert shown["name"] == "renamed"
    assert shown["b"] == "2"
    assert "a" not in shown
    assert shown["tags"] == ["blue"]


def test_glanceclient_conflict_message_from_html_error_body(gc, payload_file):
    path, _data = payload_file(1024)
    image = gc.images.create(name="twice", disk_format="raw", container_format="bare")
    with open(path, "rb") as f:
        gc.images.upload(image["id"], f)
    with open(path, "rb") as f, pytest.raises(glance_exc.HTTPConflict) as raised:
        gc.images.upload(image["id"], f)
    assert "Image status transition from active to saving is not allowed" in str(raised.value)


def test_glanceclient_lists_pages_with_next_links(gc):
    ids = {gc.images.create(name=f"page-{i}")["id"] for i in range(5)}
    listed = {
        image["id"]
        for image in gc.images.list(
            page_size=2, filters={"name": "in:" + ",".join(f"page-{i}" for i in range(5))}
        )
    }
    assert ids <= listed
