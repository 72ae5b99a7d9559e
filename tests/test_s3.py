"""The registry on an S3-compatible object store: the production server with
IMAGES_S3_* pointing at moto_server on loopback, driven by python-glanceclient."""

import hashlib
import io
import os
import subprocess
import time
import urllib.request
import uuid

import boto3
import pytest
from glanceclient import Client
from glanceclient import exc as glance_exc

from tests.live import BIN, free_port, running_registry

CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def bucket(s3_endpoint):
    s3 = boto3.resource("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **CREDENTIALS)
    created = s3.create_bucket(Bucket=f"images-{uuid.uuid4().hex[:8]}")
    yield created
    s3.meta.client.close()


@pytest.fixture(scope="module")
def registry_s3(tmp_path_factory, s3_endpoint, bucket):
    env = {
        "IMAGES_S3_BUCKET": bucket.name,
        "IMAGES_S3_ENDPOINT_URL": s3_endpoint,
        "IMAGES_S3_REGION": "us-east-1",
        "IMAGES_S3_ACCESS_KEY": CREDENTIALS["aws_access_key_id"],
        "IMAGES_S3_SECRET_KEY": CREDENTIALS["aws_secret_access_key"],
        "IMAGES_SCRUB_DELAY_SECONDS": "0",
    }
    with running_registry(tmp_path_factory.mktemp("registry-s3"), env=env) as registry:
        yield registry


@pytest.fixture
def gc(registry_s3):
    return Client(endpoint=f"{registry_s3.url}/v2", token=registry_s3.tokens["alice"])


def _objects(bucket) -> dict[str, bytes]:
    return {o.key: o.get()["Body"].read() for o in bucket.objects.all()}


def _create(gc, name):
    return gc.images.create(name=name, disk_format="raw", container_format="bare")


def test_s3_chunked_upload_lands_in_the_bucket_and_downloads_verified(gc, bucket):
    data = os.urandom(19 * 1024 * 1024 + 5)  # three multipart parts of 8 MiB
    image = _create(gc, "on-s3")
    gc.images.upload(image["id"], io.BytesIO(data))  # chunked, 1 MiB at a time

    shown = gc.images.get(image["id"])
    assert (shown["status"], shown["size"]) == ("active", len(data))
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert _objects(bucket)[image["id"]] == data
    assert b"".join(gc.images.data(image["id"])) == data  # verified against os_hash_value


def test_s3_range_download_streams_the_slice(gc, registry_s3):
    data = os.urandom(3 * 1024 * 1024)
    image = _create(gc, "ranged")
    gc.images.upload(image["id"], io.BytesIO(data))
    request = urllib.request.Request(
        f"{registry_s3.url}/v2/images/{image['id']}/file",
        headers={"X-Auth-Token": registry_s3.tokens["alice"], "Range": "bytes=1000-1999999"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 1000-1999999/{len(data)}"
        assert response.read() == data[1000:2000000]


def test_s3_admin_download_streams_with_its_length(gc, registry_s3):
    """The admin's "Download data" on S3: the object's size is known before it is read
    (Django's FileResponse only knew a local file's)."""
    data = os.urandom(2 * 1024 * 1024 + 7)
    image = _create(gc, "from-the-admin")
    gc.images.upload(image["id"], io.BytesIO(data))
    request = urllib.request.Request(
        f"{registry_s3.url}/admin/images/image/{image['id']}/download/",
        headers={"Cookie": f"sessionid={registry_s3.session_cookie('admin')}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(data))
        assert response.headers["Content-MD5"] == hashlib.md5(data).hexdigest()
        assert response.read() == data


def test_s3_failed_upload_leaves_no_object(gc, bucket):
    image = _create(gc, "cut-short")
    with pytest.raises(glance_exc.HTTPBadRequest, match="Size mismatch"):
        gc.images.upload(image["id"], io.BytesIO(b"x" * 1000), image_size=5000)
    assert gc.images.get(image["id"])["status"] == "queued"
    assert image["id"] not in _objects(bucket)


def test_s3_delete_keeps_object_until_scrub(gc, bucket, registry_s3):
    image = _create(gc, "to-scrub")
    gc.images.upload(image["id"], io.BytesIO(b"scrub me"))
    gc.images.delete(image["id"])
    assert _objects(bucket)[image["id"]] == b"scrub me"  # pending_delete keeps the data

    out = registry_s3.manage("scrub_images")
    assert out.startswith("scrubbed 1, failed 0")
    assert image["id"] not in _objects(bucket)


def test_s3_verify_store_finds_orphaned_object(registry_s3, bucket):
    bucket.put_object(Key="stray-object", Body=b"nobody's")
    try:
        with pytest.raises(RuntimeError, match="orphan: stray-object"):
            registry_s3.manage("verify_store")
        assert "orphan: stray-object (removed)" in registry_s3.manage(
            "verify_store", "--remove-orphans"
        )
        assert "stray-object" not in _objects(bucket)
    finally:
        bucket.Object("stray-object").delete()
