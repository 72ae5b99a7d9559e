"""PUT and GET /v2/images/{id}/file: streaming upload, every failure status, and
downloads with ranges."""

import hashlib
import io

import pytest

from images.enums import Status
from images.models import Image
from tests.api import create, token_client, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(alice):
    return token_client(alice)


@pytest.fixture
def queued(client):
    body = create(client, name="u", disk_format="raw", container_format="bare").json()
    return Image.objects.get(pk=body["id"])


def _operations(image):
    return list(image.transitions.values_list("source", "target", "operation"))


def test_upload_stores_bytes_hashes_and_history(client, queued, payload, image_store):
    response = upload(client, queued.pk, payload)
    assert response.status_code == 204
    assert response.content == b""
    queued.refresh_from_db()
    assert queued.status == Status.ACTIVE
    assert queued.size == len(payload)
    assert queued.checksum == hashlib.md5(payload).hexdigest()
    assert queued.os_hash_value == hashlib.sha512(payload).hexdigest()
    assert (image_store / str(queued.pk)).read_bytes() == payload
    assert _operations(queued)[-2:] == [
        ("queued", "saving", "upload"),
        ("saving", "active", "upload"),
    ]


def test_upload_chunked_body_is_read_from_wsgi_input(client, queued, payload, image_store):
    """glanceclient: Transfer-Encoding chunked, no Content-Length, x-openstack-image-size."""
    response = client.generic(
        "PUT",
        f"/v2/images/{queued.pk}/file",
        b"",
        content_type="application/octet-stream",
        HTTP_TRANSFER_ENCODING="chunked",
        HTTP_X_OPENSTACK_IMAGE_SIZE=str(len(payload)),
        **{"wsgi.input": io.BytesIO(payload)},
    )
    assert response.status_code == 204
    assert (image_store / str(queued.pk)).read_bytes() == payload


def test_upload_zero_bytes_makes_empty_active_image(client, queued):
    assert upload(client, queued.pk, b"").status_code == 204
    queued.refresh_from_db()
    assert (queued.status, queued.size) == (Status.ACTIVE, 0)
    assert queued.checksum == "d41d8cd98f00b204e9800998ecf8427e"


def test_upload_wrong_content_type_answers_415(client, queued):
    response = upload(client, queued.pk, b"data", content_type="application/json")
    assert response.status_code == 415
    assert response.json()["message"] == "Invalid content type application/json"
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED


def test_upload_without_formats_answers_400(client):
    image_id = create(client, name="no-formats").json()["id"]
    response = upload(client, image_id, b"data")
    assert response.status_code == 400
    assert (
        response.json()["message"] == "Property container_format must be set prior to saving data."
    )
    assert Image.objects.get(pk=image_id).status == Status.QUEUED


def test_upload_to_active_image_conflicts(client, queued):
    upload(client, queued.pk, b"first")
    response = upload(client, queued.pk, b"second")
    assert response.status_code == 409
    assert (
        response.json()["message"] == "Image status transition from active to saving is not allowed"
    )


def test_upload_declared_size_header_wins_over_content_length(client, queued, image_store):
    response = upload(client, queued.pk, b"x" * 2000, HTTP_X_OPENSTACK_IMAGE_SIZE="3000")
    assert response.status_code == 400
    assert response.json()["message"] == "Size mismatch: expected 3000 bytes, got 2000 bytes"
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED
    assert list(image_store.glob("*")) == []


def test_upload_more_than_declared_answers_400(client, queued):
    response = upload(client, queued.pk, b"x" * 2000, HTTP_X_OPENSTACK_IMAGE_SIZE="1000")
    assert response.status_code == 400
    assert response.json()["message"].startswith("Size exceeds: expected 1000 bytes")
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED


def test_upload_over_size_cap_answers_413_and_requeues(client, queued, settings, image_store):
    settings.IMAGES_SIZE_CAP = 1000
    response = client.generic(
        "PUT",
        f"/v2/images/{queued.pk}/file",
        b"",
        content_type="application/octet-stream",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(b"x" * 5000)},
    )
    assert response.status_code == 413
    assert response.json()["message"].startswith("The incoming image is too large")
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED
    assert list(image_store.glob("*")) == []
    assert _operations(queued)[-1] == ("saving", "queued", "upload_failed")


def test_upload_over_quota_answers_413(client, queued, settings):
    settings.IMAGES_USER_STORAGE_QUOTA = 100
    response = upload(client, queued.pk, b"x" * 500)
    assert response.status_code == 413
    assert response.json()["message"].startswith("Image exceeds the storage quota")
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED


def test_upload_store_failure_answers_503_and_requeues(client, queued, failing_store):
    failing_store(fail_writes=True, fail_deletes=False)
    response = upload(client, queued.pk, b"x" * 5000)
    assert response.status_code == 503
    assert "store failed" in response.json()["message"]
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED


def test_upload_by_non_owner_answers_403(bob, make_image):
    image = make_image("queued", owner="alice", visibility="public")
    response = upload(token_client(bob), image.pk, b"data")
    assert response.status_code == 403
    image.refresh_from_db()
    assert image.status == Status.QUEUED


# --- download --------------------------------------------------------------------------------


@pytest.fixture
def active(client, queued, payload):
    upload(client, queued.pk, payload)
    queued.refresh_from_db()
    return queued


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_download_streams_with_length_and_md5(client, active, payload):
    response = client.get(f"/v2/images/{active.pk}/file")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Length"] == str(len(payload))
    assert response["Content-MD5"] == hashlib.md5(payload).hexdigest()
    assert response["x-openstack-request-id"].startswith("req-")
    assert _body(response) == payload


def test_download_accepts_octet_stream_accept_header(client, active, payload):
    response = client.get(f"/v2/images/{active.pk}/file", HTTP_ACCEPT="application/octet-stream")
    assert response.status_code == 200
    assert _body(response) == payload


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=0-9", 0, 9), ("bytes=100-", 100, None), ("bytes=-10", -10, None)],
)
def test_download_range_answers_206(client, active, payload, header, first, last):
    response = client.get(f"/v2/images/{active.pk}/file", HTTP_RANGE=header)
    assert response.status_code == 206
    expected = payload[first : None if last is None else last + 1]
    assert _body(response) == expected
    assert response["Content-Length"] == str(len(expected))
    start = first if first >= 0 else len(payload) + first
    assert response["Content-Range"] == f"bytes {start}-{start + len(expected) - 1}/{len(payload)}"


@pytest.mark.parametrize("header", ["bytes=999999999-", "bytes=5-2", "items=0-1", "bytes=-0"])
def test_download_bad_range_answers_416(client, active, payload, header):
    response = client.get(f"/v2/images/{active.pk}/file", HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(payload)}"


def test_download_without_data_answers_204(client, queued):
    response = client.get(f"/v2/images/{queued.pk}/file")
    assert response.status_code == 204
    assert response.content == b""


def test_download_deactivated_forbidden_for_owner_allowed_for_admin(
    client, active, admin_user, payload
):
    client.post(f"/v2/images/{active.pk}/actions/deactivate")
    refused = client.get(f"/v2/images/{active.pk}/file")
    assert refused.status_code == 403
    assert refused.json()["message"] == (
        "The requested image has been deactivated. Image data download is forbidden."
    )
    allowed = token_client(admin_user).get(f"/v2/images/{active.pk}/file")
    assert allowed.status_code == 200
    assert _body(allowed) == payload


def test_download_missing_store_file_answers_503(client, active, image_store):
    (image_store / str(active.pk)).unlink()
    response = client.get(f"/v2/images/{active.pk}/file")
    assert response.status_code == 503
    assert "missing from the store" in response.json()["message"]
