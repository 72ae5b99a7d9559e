"""The S3 store's suite (tests/test_s3.py, there against moto_server) run again here
against Ceph's RADOS Gateway, the object store it is meant for: multipart uploads,
ranged GETs, deletes and the listing `verify_store` reads, on a real radosgw."""

import io
import os
import uuid

import boto3
import pytest
from glanceclient import Client

from tests.live import running_registry
from tests.test_s3 import (  # noqa: F401  (collected here, with this module's fixtures)
    gc,
    test_s3_chunked_upload_lands_in_the_bucket_and_downloads_verified,
    test_s3_delete_keeps_object_until_scrub,
    test_s3_failed_upload_leaves_no_object,
    test_s3_range_download_streams_the_slice,
    test_s3_verify_store_finds_orphaned_object,
)


@pytest.fixture(scope="module")
def bucket(ceph):
    s3 = boto3.resource(
        "s3",
        endpoint_url=ceph.s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=ceph.s3_access_key,
        aws_secret_access_key=ceph.s3_secret_key,
    )
    created = s3.create_bucket(Bucket=f"images-{uuid.uuid4().hex[:8]}")
    yield created
    s3.meta.client.close()


@pytest.fixture(scope="module")
def registry_s3(ceph, bucket, tmp_path_factory):
    env = {**ceph.s3_env(bucket.name), "IMAGES_SCRUB_DELAY_SECONDS": "0"}
    with running_registry(tmp_path_factory.mktemp("registry-rgw"), env=env) as registry:
        yield registry


def test_radosgw_multipart_upload_is_one_object_of_its_parts(registry_s3, bucket):
    """What moto does not show: radosgw's own record of a multipart upload."""
    client = Client(endpoint=f"{registry_s3.url}/v2", token=registry_s3.tokens["bob"])
    image = client.images.create(name="parts", disk_format="raw", container_format="bare")
    data = os.urandom(17 * 1024 * 1024)  # parts of 8 MiB: 8 + 8 + 1
    client.images.upload(image["id"], io.BytesIO(data))
    stored = bucket.Object(image["id"])
    assert (stored.content_length, stored.e_tag.strip('"')[-2:]) == (len(data), "-3")
