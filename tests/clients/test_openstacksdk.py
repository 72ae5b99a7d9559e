"""openstacksdk against the real server, with a real token.

`auth_type="admin_token"` sends our DRF token as X-Auth-Token and uses the
versioned endpoint as is (reference §4). `auth_type="none"` would send the
literal token "notused", which this registry rightly refuses.
"""

import hashlib

import openstack
import pytest
import requests
from openstack import exceptions as sdk_exc

# openstacksdk 4.22 warns about its own internals (an InfluxDB default nobody set, a
# deprecated method it calls itself) and leaves the uploaded file open: not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore::openstack.warnings._RemovedInSDKWarning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def _connect(registry, user="alice"):
    return openstack.connect(
        auth_type="admin_token",
        auth={"endpoint": f"{registry.url}/v2", "token": registry.tokens[user]},
        load_yaml_config=False,
        load_envvars=False,
    )


@pytest.fixture
def conn(registry):
    connection = _connect(registry)
    yield connection
    connection.close()


def test_openstacksdk_create_download_update_delete(conn, registry, payload_file, tmp_path):
    path, data = payload_file()
    image = conn.image.create_image(
        "sdk-image",
        filename=str(path),
        disk_format="raw",
        container_format="bare",
        allow_duplicates=True,
        validate_checksum=True,
    )
    image = conn.image.get_image(image.id)
    assert image.status == "active"
    assert image.checksum == hashlib.md5(data).hexdigest()
    # The sdk records what it uploaded as extra (string) properties.
    assert image.properties["owner_specified.openstack.sha256"] == hashlib.sha256(data).hexdigest()

    out = tmp_path / "out.raw"
    conn.image.download_image(image, output=str(out))  # verifies the hash as it writes
    assert out.read_bytes() == data

    conn.image.update_image(image, name="sdk-renamed", min_ram=512, hw_disk_bus="virtio")
    updated = conn.image.get_image(image.id)
    assert (updated.name, updated.min_ram) == ("sdk-renamed", 512)
    assert updated.hw_disk_bus == "virtio"  # an extra property the sdk knows by name

    conn.image.delete_image(image)
    with pytest.raises(sdk_exc.NotFoundException):
        conn.image.get_image(image.id)


def test_openstacksdk_images_pages_past_the_default_limit(conn, registry):
    headers = {"X-Auth-Token": registry.tokens["bob"], "Content-Type": "application/json"}
    created = set()
    for i in range(27):
        response = requests.post(
            f"{registry.url}/v2/images", json={"name": f"bulk-{i:02d}"}, headers=headers
        )
        assert response.status_code == 201
        created.add(response.json()["id"])

    bob = _connect(registry, "bob")
    try:
        listed = [image.id for image in bob.image.images(owner="bob")]
    finally:
        bob.close()
    assert len(listed) == 27  # more than one page of 25
    assert set(listed) == created


def test_openstacksdk_noauth_token_is_refused(registry):
    conn = openstack.connect(
        auth_type="none",
        auth={"endpoint": registry.url},
        load_yaml_config=False,
        load_envvars=False,
    )
    try:
        with pytest.raises(sdk_exc.HttpException) as raised:
            list(conn.image.images())
    finally:
        conn.close()
    assert raised.value.status_code == 401


def test_openstacksdk_upload_is_inspected(conn, disk_images):
    vhdx = disk_images["vhdx"]
    with open(vhdx.path, "rb") as data:  # the SDK leaves a file it opened itself open
        image = conn.image.create_image(
            name="sdk-vhdx", disk_format="vhdx", container_format="bare", data=data
        )
    shown = conn.image.get_image(image.id)
    assert (shown.status, shown.virtual_size) == ("active", vhdx.virtual_size)

    # openstacksdk deletes the image whose upload failed, and re-raises.
    with (
        open(disk_images["qcow2-backing-file"].path, "rb") as data,
        pytest.raises(sdk_exc.HttpException) as refused,
    ):
        conn.image.create_image(
            name="sdk-unsafe", disk_format="qcow2", container_format="bare", data=data
        )
    assert refused.value.status_code == 400
    assert "Image failed safety checks (backing_file" in refused.value.response.text
    assert not list(conn.image.images(name="sdk-unsafe"))
