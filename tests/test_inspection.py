"""images/inspection.py through the upload path: real disk images made by qemu-img
(tests/disk_images.py) uploaded under their true disk_format, under another one, and
the dangerous ones under every one."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from images import services, storage
from images.enums import DiskFormat, Status
from images.errors import FormatMismatch, UnsafeImage
from images.models import Image
from tests.api import create, token_client, upload

pytestmark = pytest.mark.django_db

OPERATOR = "operator"
# The disk_format a tenant gives each safe image; a GPT disk or a LUKS volume is a raw disk.
SAFE = {
    "raw": "raw",
    "qcow2": "qcow2",
    "qcow2-compressed": "qcow2",
    "vmdk-monolithic-sparse": "vmdk",
    "vmdk-stream-optimized": "vmdk",
    "vhd": "vhd",
    "vhdx": "vhdx",
    "vdi": "vdi",
    "iso": "iso",
    "iso-gpt": "iso",
    "gpt": "raw",
    "luks": "raw",
}
DANGEROUS = [
    "qcow2-backing-file",
    "qcow2-data-file",
    "vmdk-flat-descriptor",
    "vmdk-flat-descriptor-text",
    "qed",
]


def _upload(disk_image, disk_format: str, container_format: str = "bare") -> Image:
    image = services.image_create(
        actor=OPERATOR,
        name=disk_image.name,
        disk_format=disk_format,
        container_format=container_format,
    )
    data = disk_image.path.read_bytes()
    return services.image_upload(
        image=image, actor=OPERATOR, stream=io.BytesIO(data), declared_size=len(data)
    )


def _refused(disk_image, disk_format: str) -> tuple[Exception, Image]:
    with pytest.raises((FormatMismatch, UnsafeImage)) as refusal:
        _upload(disk_image, disk_format)
    image = Image.objects.get(name=disk_image.name)
    return refusal.value, image


def _assert_nothing_kept(image: Image, image_store) -> None:
    assert image.status == Status.QUEUED
    assert (image.size, image.checksum, image.virtual_size) == (None, None, None)
    assert not image.locations.exists()
    assert not list(image_store.glob("*")), "no byte of a refused upload stays in the store"


@pytest.mark.parametrize("name", SAFE)
def test_inspection_true_format_is_active_with_qemu_virtual_size(disk_images, name):
    disk_image = disk_images[name]
    image = _upload(disk_image, SAFE[name])
    assert image.status == Status.ACTIVE
    expected = disk_image.path.stat().st_size if SAFE[name] == "raw" else disk_image.virtual_size
    assert image.virtual_size == expected
    assert image.data_format == disk_image.disk_format
    assert image.transitions.last().reason.endswith(
        f"content {disk_image.disk_format}, virtual size {expected}"
    )


@pytest.mark.parametrize("name", [name for name, fmt in SAFE.items() if fmt != "raw"])
def test_inspection_other_format_is_refused_with_glance_message(disk_images, image_store, name):
    disk_image = disk_images[name]
    claimed = "vmdk" if disk_image.disk_format == "qcow2" else "qcow2"
    refusal, image = _refused(disk_image, claimed)
    assert isinstance(refusal, FormatMismatch)
    assert refusal.message == (
        f"Image disk_format {claimed} does not match stream data {disk_image.disk_format}"
    )
    _assert_nothing_kept(image, image_store)
    assert image.transitions.last().reason == refusal.message


@pytest.mark.parametrize("claimed", ["qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso"])
def test_inspection_raw_bytes_under_a_disk_format_are_refused(disk_images, image_store, claimed):
    refusal, image = _refused(disk_images["raw"], claimed)
    assert refusal.message == f"Image disk_format {claimed} does not match stream data raw"
    _assert_nothing_kept(image, image_store)


@pytest.mark.parametrize("claimed", DiskFormat.values)
@pytest.mark.parametrize("name", DANGEROUS)
def test_inspection_dangerous_image_is_refused_under_every_format(
    disk_images, image_store, name, claimed
):
    refusal, image = _refused(disk_images[name], claimed)
    _assert_nothing_kept(image, image_store)
    if claimed == "raw":
        # Raw takes any content, so what refuses it is the safety check, named.
        assert isinstance(refusal, UnsafeImage)
        assert refusal.message.startswith("Image failed safety checks (")
        assert image.transitions.last().reason == refusal.message


def test_inspection_names_the_failed_safety_check(disk_images):
    refusal, _ = _refused(disk_images["qcow2-backing-file"], "qcow2")
    assert refusal.checks == ["backing_file"]
    refusal, _ = _refused(disk_images["qcow2-data-file"], "qcow2")
    assert refusal.checks == ["data_file"]
    refusal, _ = _refused(disk_images["qed"], "raw")
    assert refusal.checks == ["banned"]


def test_inspection_raw_records_what_the_content_really_is(disk_images):
    image = _upload(disk_images["qcow2"], "raw")
    assert image.status == Status.ACTIVE
    assert image.data_format == "qcow2"
    assert image.virtual_size == disk_images["qcow2"].path.stat().st_size


def test_inspection_skips_containers_other_than_bare(disk_images):
    image = _upload(disk_images["raw"], "qcow2", container_format="ova")
    assert image.status == Status.ACTIVE
    assert (image.data_format, image.virtual_size) == ("", None)


def test_inspection_uninspectable_formats_take_unrecognised_content(disk_images):
    for disk_format in ("ami", "ari", "aki", "ploop"):
        image = _upload(disk_images["raw"], disk_format)
        assert (image.status, image.data_format) == (Status.ACTIVE, "raw")


def test_inspection_kernel_boot_sector_passes_as_aki(image_store):
    """A bzImage starts with a legacy boot sector (0x55AA at 510, no partitions): the
    GPT inspector takes it for a bad MBR, which aki and ari are exempt from."""
    kernel = bytearray(b"\xeb\x3c" + bytes(508) + b"\x55\xaa") + b"kernel code" * 1000
    kernel_image = services.image_create(actor=OPERATOR, disk_format="aki", container_format="bare")
    stored = services.image_upload(
        image=kernel_image, actor=OPERATOR, stream=io.BytesIO(kernel), declared_size=len(kernel)
    )
    assert (stored.status, stored.data_format) == (Status.ACTIVE, "gpt")
    as_raw = services.image_create(actor=OPERATOR, disk_format="raw", container_format="bare")
    with pytest.raises(UnsafeImage) as refusal:
        services.image_upload(
            image=as_raw, actor=OPERATOR, stream=io.BytesIO(kernel), declared_size=len(kernel)
        )
    assert refusal.value.checks == ["mbr"]


def test_inspection_switch_off_lets_a_mismatch_through_but_not_danger(disk_images, settings):
    settings.IMAGES_REQUIRE_FORMAT_MATCH = False
    image = _upload(disk_images["raw"], "qcow2")
    assert (image.status, image.data_format, image.virtual_size) == (Status.ACTIVE, "raw", None)
    refusal, _ = _refused(disk_images["qcow2-backing-file"], "qcow2")
    assert isinstance(refusal, UnsafeImage)


def test_inspection_gpt_checks_can_be_made_nonfatal(settings):
    broken_mbr = bytes(510) + b"\x55\xaa" + bytes(4096)  # a signature and no partition
    image = services.image_create(actor=OPERATOR, disk_format="raw", container_format="bare")
    with pytest.raises(UnsafeImage):
        services.image_upload(image=image, actor=OPERATOR, stream=io.BytesIO(broken_mbr))
    settings.IMAGES_GPT_SAFETY_CHECKS_NONFATAL = ["mbr"]
    image = services.image_upload(image=image, actor=OPERATOR, stream=io.BytesIO(broken_mbr))
    assert (image.status, image.data_format) == (Status.ACTIVE, "gpt")


def test_inspection_refusal_stops_reading_the_body(disk_images):
    """Refused from the header: a 64 MiB body is read no further than its first MiBs."""
    header = disk_images["qcow2-backing-file"].path.read_bytes()

    class Body:
        """A client's body: the unsafe header, then zeros, as long as it is read."""

        read_so_far = 0

        def read(self, size=-1):
            start = Body.read_so_far
            Body.read_so_far += size
            return (header + bytes(start + size))[start : start + size]

    image = services.image_create(actor=OPERATOR, disk_format="qcow2", container_format="bare")
    with pytest.raises(UnsafeImage):
        services.image_upload(image=image, actor=OPERATOR, stream=Body(), declared_size=64 << 20)
    assert Body.read_so_far <= 2 * storage.CHUNK_SIZE


def test_inspection_disk_formats_setting_narrows_what_is_accepted(alice, settings):
    settings.IMAGES_DISK_FORMATS = ["raw", "qcow2"]
    response = create(token_client(alice), name="vhd", disk_format="vhd", container_format="bare")
    assert response.status_code == 400
    assert response.json()["message"] == (
        "Invalid disk_format 'vhd': this registry accepts raw, qcow2."
    )
    schema = token_client(alice).get("/v2/schemas/image").json()
    assert schema["properties"]["disk_format"]["enum"] == [None, "raw", "qcow2"]


# --- the API ------------------------------------------------------------------------


def test_inspection_api_mismatch_answers_415(alice, disk_images, image_store):
    client = token_client(alice)
    image_id = create(client, name="c", disk_format="qcow2", container_format="bare").json()["id"]
    response = upload(client, image_id, disk_images["raw"].path.read_bytes())
    assert response.status_code == 415
    assert response.json()["message"] == "Image disk_format qcow2 does not match stream data raw"
    shown = client.get(f"/v2/images/{image_id}").json()
    assert (shown["status"], shown["size"], shown["virtual_size"]) == ("queued", None, None)


def test_inspection_api_unsafe_answers_400(alice, disk_images, image_store):
    client = token_client(alice)
    image_id = create(client, name="c", disk_format="qcow2", container_format="bare").json()["id"]
    response = upload(client, image_id, disk_images["qcow2-data-file"].path.read_bytes())
    assert response.status_code == 400
    assert response.json()["message"].startswith("Image failed safety checks (data_file: ")
    assert client.get(f"/v2/images/{image_id}").json()["status"] == "queued"


def test_inspection_api_shows_virtual_size(alice, disk_images):
    client = token_client(alice)
    image_id = create(client, name="c", disk_format="vdi", container_format="bare").json()["id"]
    assert upload(client, image_id, disk_images["vdi"].path.read_bytes()).status_code == 204
    shown = client.get(f"/v2/images/{image_id}").json()
    assert shown["virtual_size"] == disk_images["vdi"].virtual_size


# --- stored data: inspect_images ------------------------------------------------------


def test_inspect_images_reports_stored_data_that_breaks_the_rules(disk_images, settings, capsys):
    settings.IMAGES_REQUIRE_FORMAT_MATCH = False  # as before the rules were switched on
    liar = _upload(disk_images["raw"], "qcow2")
    honest = _upload(disk_images["qcow2"], "qcow2")
    Image.objects.filter(pk=honest.pk).update(data_format="", virtual_size=None)  # a legacy record
    settings.IMAGES_REQUIRE_FORMAT_MATCH = True
    with pytest.raises(CommandError, match="2 inspected, 1 with problems"):
        call_command("inspect_images")
    out = capsys.readouterr().out
    assert f"problem: image {liar.pk} (qcow2): Image disk_format qcow2 does not match" in out
    liar.refresh_from_db()
    honest.refresh_from_db()
    assert liar.status == Status.ACTIVE and liar.data_problem.startswith("Image disk_format")
    assert (honest.data_format, honest.virtual_size, honest.data_problem) == (
        "qcow2",
        disk_images["qcow2"].virtual_size,
        "",
    )
    call_command("inspect_images", str(honest.pk))  # one good image: exit 0
    assert "1 inspected, 0 with problems" in capsys.readouterr().out


# --- through gunicorn: the refusal comes before the body ---------------------------


def test_inspection_refusal_answers_before_the_body_is_sent(registry, disk_images):
    """A client that has sent the header and 1 MiB of a declared 256 MiB gets its 415
    at once: the server stopped reading, and says the connection ends."""
    import socket

    import requests

    token = registry.tokens["alice"]
    created = requests.post(
        f"{registry.url}/v2/images",
        json={"name": "early", "disk_format": "vmdk", "container_format": "bare"},
        headers={"X-Auth-Token": token},
        timeout=30,
    ).json()
    head = (
        f"PUT /v2/images/{created['id']}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-Auth-Token: {token}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {256 << 20}\r\n\r\n"
    ).encode()
    first_mib = disk_images["qcow2"].path.read_bytes()[: 1 << 20]
    with socket.create_connection(("127.0.0.1", registry.port), timeout=30) as sock:
        sock.sendall(head + first_mib)  # and nothing more: a server waiting for it would hang
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, "closed without an answer"
            answer += chunk
    status_line, *headers = answer.split(b"\r\n\r\n")[0].decode().split("\r\n")
    assert status_line == "HTTP/1.1 415 Unsupported Media Type"
    assert "Connection: close" in headers
    shown = requests.get(
        f"{registry.url}/v2/images/{created['id']}", headers={"X-Auth-Token": token}, timeout=30
    ).json()
    assert shown["status"] == "queued"
