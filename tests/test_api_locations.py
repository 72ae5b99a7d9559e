"""External locations: PATCH /locations and the locations API (2.17) against a real
HTTP server on loopback; queued → active without saving, downloads proxied, the
operator's switches, validation data and the last-location rule (OSSN-0065)."""

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from images.enums import LocationStatus, Operation, Status
from images.models import Image, ImageLocation, ImageTransition
from tests.api import create, patch, token_client

pytestmark = pytest.mark.django_db

DATA = os.urandom(256 * 1024 + 17)
MD5 = hashlib.md5(DATA).hexdigest()
SHA512 = hashlib.sha512(DATA).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Serves DATA at /image.raw, /copy.raw and /third.raw, the same without a Content-Length at
    /undeclared.raw, 100 other bytes at /other.raw; 404 elsewhere."""

    def do_GET(self):
        bodies = {p: DATA for p in ("/image.raw", "/copy.raw", "/third.raw", "/undeclared.raw")}
        body = bodies.get(self.path, b"x" * 100 if self.path == "/other.raw" else None)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if self.path != "/undeclared.raw":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def remote(settings):
    """The base URL of a loopback HTTP server, allowed as a location host; locations
    shown and writable (tests of the switches turn them off again)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS = [server.server_address[1]]
    settings.IMAGES_SHOW_MULTIPLE_LOCATIONS = True
    settings.IMAGES_SHOW_DIRECT_URL = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _queued(client, **fields):
    fields = {"name": "ext", "disk_format": "raw", "container_format": "bare", **fields}
    response = create(client, **fields)
    assert response.status_code == 201
    return response.json()["id"]


def _add(client, image_id, url, position="-", **extra):
    value = {"url": url, "metadata": {}, **extra}
    return patch(
        client, image_id, [{"op": "add", "path": f"/locations/{position}", "value": value}]
    )


def _history(image_id):
    return list(
        ImageTransition.objects.filter(image_id=image_id).values_list(
            "source", "target", "operation"
        )
    )


def _urls(image_id):
    return list(
        ImageLocation.objects.filter(image_id=image_id, status=LocationStatus.ACTIVE)
        .order_by("id")
        .values_list("url", flat=True)
    )


def _download(client, image_id):
    response = client.get(f"/v2/images/{image_id}/file")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    response.close()
    return response, body


# --- add: queued → active, never saving ---------------------------------------------------


def test_location_add_activates_queued_image_without_saving(alice, remote):
    client = token_client(alice)
    image_id = _queued(client)
    response = _add(client, image_id, f"{remote}/image.raw")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["size"]) == ("active", len(DATA))
    assert body["locations"] == [{"url": f"{remote}/image.raw", "metadata": {}}]
    assert body["direct_url"] == f"{remote}/image.raw"
    assert _history(image_id) == [
        ("", Status.QUEUED, Operation.CREATE),
        (Status.QUEUED, Status.ACTIVE, Operation.ADD_LOCATION),
    ]
    assert list(ImageLocation.objects.values_list("url", "in_store")) == [
        (f"{remote}/image.raw", False)
    ]


def test_location_download_proxies_the_remote_bytes(alice, remote):
    client = token_client(alice)
    image_id = _queued(client)
    _add(client, image_id, f"{remote}/image.raw")
    response, body = _download(client, image_id)
    assert response.status_code == 200
    assert "Location" not in response
    assert response["Content-Length"] == str(len(DATA))
    assert body == DATA


def test_location_download_without_declared_length_streams_all_bytes(alice, remote):
    client = token_client(alice)
    image_id = _queued(client)
    assert _add(client, image_id, f"{remote}/image.raw").status_code == 200
    # The location is added once; the remote then stops declaring a length.
    ImageLocation.objects.filter(image_id=image_id).update(url=f"{remote}/undeclared.raw")
    response, body = _download(client, image_id)
    assert (response.status_code, body) == (200, DATA)
    assert "Content-Length" not in response


def test_location_download_of_a_vanished_remote_answers_503(alice, remote):
    client = token_client(alice)
    image_id = _queued(client)
    _add(client, image_id, f"{remote}/image.raw")
    ImageLocation.objects.filter(image_id=image_id).update(url=f"{remote}/gone.raw")
    response, _ = _download(client, image_id)
    assert response.status_code == 503


def test_location_add_with_formats_set_in_the_same_patch(alice, remote):
    client = token_client(alice)
    image_id = _queued(client, disk_format=None, container_format=None)
    response = patch(
        client,
        image_id,
        [
            {"op": "replace", "path": "/disk_format", "value": "raw"},
            {"op": "replace", "path": "/container_format", "value": "bare"},
            {
                "op": "add",
                "path": "/locations/-",
                "value": {"url": f"{remote}/image.raw", "metadata": {}},
            },
        ],
    )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["disk_format"]) == ("active", "raw")


def test_location_add_without_formats_refused(alice, remote):
    client = token_client(alice)
    image_id = _queued(client, disk_format=None, container_format=None)
    response = _add(client, image_id, f"{remote}/image.raw")
    assert response.status_code == 400
    assert "container_format must be set" in response.json()["message"]
    assert (Image.objects.get(pk=image_id).status, _urls(image_id)) == (Status.QUEUED, [])


# --- validation data -----------------------------------------------------------------------


def test_location_validation_data_recorded_as_the_image_hashes(alice, remote):
    client = token_client(alice)
    image_id = _queued(client)
    validation = {"checksum": MD5, "os_hash_algo": "sha512", "os_hash_value": SHA512}
    response = _add(client, image_id, f"{remote}/image.raw", validation_data=validation)
    assert response.status_code == 200
    image = Image.objects.get(pk=image_id)
    assert (image.checksum, image.os_hash_algo, image.os_hash_value) == (MD5, "sha512", SHA512)
    assert "validation_data" not in response.json()["locations"][0]
    download, _ = _download(client, image_id)
    assert download["Content-MD5"] == MD5


@pytest.mark.parametrize(
    ("validation", "code", "message"),
    [
        (
            {"checksum": "z" * 32, "os_hash_algo": "sha512", "os_hash_value": SHA512},
            409,
            "hexadecimal",
        ),
        ({"os_hash_algo": "sha256", "os_hash_value": SHA512}, 409, "os_hash_algo must be sha512"),
        ({"os_hash_algo": "sha512", "os_hash_value": SHA512[:64]}, 409, "correct size"),
        (
            {"checksum": MD5[:31], "os_hash_algo": "sha512", "os_hash_value": SHA512},
            400,
            "checksum",
        ),
        ({"checksum": MD5}, 400, "'os_hash_algo' is a required property"),
        ({"os_hash_algo": "sha512", "os_hash_value": SHA512, "size": "1"}, 400, "Additional"),
    ],
)
def test_location_validation_data_malformed_refused(alice, remote, validation, code, message):
    client = token_client(alice)
    image_id = _queued(client)
    response = _add(client, image_id, f"{remote}/image.raw", validation_data=validation)
    assert response.status_code == code
    assert message in response.json()["message"]
    image = Image.objects.get(pk=image_id)
    assert (image.status, image.checksum, _urls(image_id)) == (Status.QUEUED, None, [])


def test_location_validation_data_of_an_active_image_must_match(alice, remote):
    client = token_client(alice)
    image_id = _queued(client)
    validation = {"checksum": MD5, "os_hash_algo": "sha512", "os_hash_value": SHA512}
    _add(client, image_id, f"{remote}/image.raw", validation_data=validation)
    same = _add(client, image_id, f"{remote}/copy.raw", validation_data=validation)
    assert same.status_code == 200
    other = {**validation, "os_hash_value": "0" * 128}
    response = _add(
        client, image_id, f"{remote}/copy.raw", metadata={"n": "2"}, validation_data=other
    )
    assert response.status_code == 409
    assert response.json()["message"] == "os_hash_value is already set with a different value"
    assert _urls(image_id) == [f"{remote}/image.raw", f"{remote}/copy.raw"]


# --- the operator's switches -----------------------------------------------------------------


def test_location_switches_off_refuse_patch_and_hide_fields(alice, remote, settings):
    settings.IMAGES_SHOW_MULTIPLE_LOCATIONS = False
    settings.IMAGES_SHOW_DIRECT_URL = False
    client = token_client(alice)
    image_id = _queued(client)
    response = _add(client, image_id, f"{remote}/image.raw")
    assert response.status_code == 403
    assert response.json()["message"] == (
        "It's not allowed to add locations if locations are invisible."
    )
    assert (Image.objects.get(pk=image_id).status, _urls(image_id)) == (Status.QUEUED, [])
    # Added through the locations API instead, the image still does not show them.
    body = {"url": f"{remote}/image.raw"}
    posted = client.post(
        f"/v2/images/{image_id}/locations", json.dumps(body), content_type="application/json"
    )
    assert posted.status_code == 202
    shown = client.get(f"/v2/images/{image_id}").json()
    assert shown["status"] == "active"
    assert "locations" not in shown and "direct_url" not in shown
    listed = client.get("/v2/images").json()["images"][0]
    assert "locations" not in listed and "direct_url" not in listed


def test_location_switches_shown_only_to_who_manages_the_image(alice, bob, remote):
    client = token_client(alice)
    image_id = _queued(client, visibility="community")
    _add(client, image_id, f"{remote}/image.raw")
    assert client.get("/v2/images").json()["images"][0]["locations"] == [
        {"url": f"{remote}/image.raw", "metadata": {}}
    ]
    seen_by_bob = token_client(bob).get(f"/v2/images/{image_id}").json()
    assert (seen_by_bob["locations"], "direct_url" in seen_by_bob) == ([], False)


def test_location_schema_describes_locations_with_validation_data(alice, settings):
    settings.IMAGES_SHOW_MULTIPLE_LOCATIONS = False
    schema = token_client(alice).get("/v2/schemas/image").json()["properties"]
    item = schema["locations"]["items"]
    assert item["required"] == ["url", "metadata"]
    assert item["properties"]["validation_data"]["required"] == ["os_hash_algo", "os_hash_value"]
    assert schema["locations"]["description"].endswith("This registry does not show it.")


# --- remove and replace --------------------------------------------------------------------


def test_location_remove_last_of_active_image_refused(alice, remote):
    client = token_client(alice)
    image_id = _queued(client)
    _add(client, image_id, f"{remote}/image.raw")
    response = patch(client, image_id, [{"op": "remove", "path": "/locations/0"}])
    assert response.status_code == 403
    assert response.json()["message"] == "Cannot remove last location in the image."
    assert _urls(image_id) == [f"{remote}/image.raw"]
    assert Image.objects.get(pk=image_id).status == Status.ACTIVE


def test_location_remove_one_of_two_keeps_the_other(alice, remote):
    client = token_client(alice)
    image_id = _queued(client)
    _add(client, image_id, f"{remote}/image.raw")
    assert _add(client, image_id, f"{remote}/copy.raw", position="0").status_code == 200
    assert _urls(image_id) == [f"{remote}/copy.raw", f"{remote}/image.raw"]
    response = patch(client, image_id, [{"op": "remove", "path": "/locations/0"}])
    assert response.status_code == 200
    assert response.json()["locations"] == [{"url": f"{remote}/image.raw", "metadata": {}}]
    assert ImageLocation.objects.get(url=f"{remote}/copy.raw").status == LocationStatus.DELETED


def test_location_add_at_a_position_keeps_the_others_in_order(alice, remote):
    client = token_client(alice)
    image_id = _queued(client)
    _add(client, image_id, f"{remote}/image.raw", metadata={"n": "1"})
    _add(client, image_id, f"{remote}/copy.raw")
    response = _add(client, image_id, f"{remote}/third.raw", position="1")
    assert response.status_code == 200
    assert [loc["url"] for loc in response.json()["locations"]] == [
        f"{remote}/image.raw",
        f"{remote}/third.raw",
        f"{remote}/copy.raw",
    ]
    assert response.json()["locations"][0]["metadata"] == {"n": "1"}
    assert _add(client, image_id, f"{remote}/third.raw", position="9").status_code == 400


def test_location_remove_of_uploaded_data_removes_its_bytes(alice, remote, image_store):
    client = token_client(alice)
    image_id = _queued(client)
    upload = client.put(
        f"/v2/images/{image_id}/file", DATA, content_type="application/octet-stream"
    )
    assert upload.status_code == 204
    assert _add(client, image_id, f"{remote}/image.raw").status_code == 200
    assert (image_store / image_id).exists()
    response = patch(client, image_id, [{"op": "remove", "path": "/locations/0"}])
    assert response.status_code == 200
    assert not (image_store / image_id).exists()
    assert _urls(image_id) == [f"{remote}/image.raw"]
    _, body = _download(client, image_id)
    assert body == DATA


def test_location_remove_from_queued_image_refused(alice, remote):
    image_id = _queued(token_client(alice))
    response = patch(token_client(alice), image_id, [{"op": "remove", "path": "/locations/0"}])
    assert response.status_code == 409


def test_location_add_with_another_size_refused(alice, remote):
    client = token_client(alice)
    image_id = _queued(client)
    _add(client, image_id, f"{remote}/image.raw")
    response = _add(client, image_id, f"{remote}/other.raw")
    assert response.status_code == 400
    assert _urls(image_id) == [f"{remote}/image.raw"]


def test_location_replace_on_queued_image_activates_it(alice, remote):
    client = token_client(alice)
    image_id = _queued(client)
    value = [{"url": f"{remote}/image.raw", "metadata": {"a": "1"}}]
    response = patch(client, image_id, [{"op": "replace", "path": "/locations", "value": value}])
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["locations"]) == ("active", value)
    assert _history(image_id)[-1] == (Status.QUEUED, Status.ACTIVE, Operation.ADD_LOCATION)


def test_location_replace_of_active_image_changes_metadata_not_urls(alice, remote):
    client = token_client(alice)
    image_id = _queued(client)
    _add(client, image_id, f"{remote}/image.raw")
    other = [{"url": f"{remote}/copy.raw", "metadata": {}}]
    response = patch(client, image_id, [{"op": "replace", "path": "/locations", "value": other}])
    assert response.status_code == 400
    assert _urls(image_id) == [f"{remote}/image.raw"]
    same = [{"url": f"{remote}/image.raw", "metadata": {"tier": "cold"}}]
    response = patch(client, image_id, [{"op": "replace", "path": "/locations", "value": same}])
    assert (response.status_code, response.json()["locations"]) == (200, same)
    empty = patch(client, image_id, [{"op": "replace", "path": "/locations", "value": []}])
    assert empty.status_code == 403


# --- refusals: status, rights, URLs ----------------------------------------------------------


@pytest.mark.parametrize(
    "status", [Status.SAVING, Status.UPLOADING, Status.IMPORTING, Status.KILLED, Status.DEACTIVATED]
)
def test_location_add_on_image_neither_queued_nor_active_refused(alice, remote, make_image, status):
    image = make_image(status, owner="alice")
    response = _add(token_client(alice), image.pk, f"{remote}/image.raw")
    assert response.status_code == 409
    assert (
        response.json()["message"]
        == f"It's not allowed to add locations if image status is {status}."
    )
    assert _urls(image.pk) == []
    assert Image.objects.get(pk=image.pk).status == status


def test_location_add_by_someone_else_refused(alice, bob, remote):
    image_id = _queued(token_client(alice), visibility="community")
    response = _add(token_client(bob), image_id, f"{remote}/image.raw")
    assert response.status_code == 403
    assert Image.objects.get(pk=image_id).status == Status.QUEUED


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("ftp://127.0.0.1/image.raw", ["127.0.0.1"]),
        ("file:///etc/passwd", ["127.0.0.1"]),
        ("{remote}/image.raw", []),  # loopback, not allowed by the operator
    ],
)
def test_location_url_refused_changes_nothing(alice, remote, settings, url, allowed):
    settings.IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS = allowed
    client = token_client(alice)
    image_id = _queued(client)
    response = _add(client, image_id, url.format(remote=remote))
    assert response.status_code == 400
    assert (Image.objects.get(pk=image_id).status, _urls(image_id)) == (Status.QUEUED, [])
    assert _history(image_id) == [("", Status.QUEUED, Operation.CREATE)]


@pytest.mark.parametrize("path", ["/missing.raw", "/undeclared.raw"])
def test_location_unreachable_or_unsized_refused(alice, remote, path):
    client = token_client(alice)
    image_id = _queued(client)
    response = _add(client, image_id, f"{remote}{path}")
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"Invalid location {remote}{path}")
    assert (Image.objects.get(pk=image_id).status, _urls(image_id)) == (Status.QUEUED, [])


def test_location_path_without_position_refused(alice, remote):
    client = token_client(alice)
    image_id = _queued(client)
    value = {"url": f"{remote}/image.raw", "metadata": {}}
    response = patch(client, image_id, [{"op": "add", "path": "/locations", "value": value}])
    assert response.status_code == 400
    assert response.json()["message"] == "Invalid JSON pointer for this resource: '/locations'"


def test_location_create_with_locations_still_refused(alice, remote):
    response = create(
        token_client(alice), locations=[{"url": f"{remote}/image.raw", "metadata": {}}]
    )
    assert response.status_code == 403


# --- the locations API (2.17) ----------------------------------------------------------------


def _post(client, image_id, body):
    return client.post(
        f"/v2/images/{image_id}/locations", json.dumps(body), content_type="application/json"
    )


def test_location_api_post_activates_and_records_hashes(alice, remote):
    client = token_client(alice)
    image_id = _queued(client)
    body = {
        "url": f"{remote}/image.raw",
        "validation_data": {"os_hash_algo": "sha512", "os_hash_value": SHA512},
    }
    response = _post(client, image_id, body)
    assert response.status_code == 202
    image = Image.objects.get(pk=image_id)
    assert (image.status, image.size, image.os_hash_value, image.checksum) == (
        Status.ACTIVE,
        len(DATA),
        SHA512,
        None,
    )
    assert _history(image_id)[-1] == (Status.QUEUED, Status.ACTIVE, Operation.ADD_LOCATION)
    listed = client.get(f"/v2/images/{image_id}/locations")
    assert listed.json() == [{"url": f"{remote}/image.raw", "metadata": {}}]
    again = _post(client, image_id, {"url": f"{remote}/copy.raw"})
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "'url' is a required property"),
        ({"url": "x", "validation_data": {"os_hash_algo": "sha512"}}, "dependency"),
        (
            {
                "url": "{remote}/image.raw",
                "validation_data": {"os_hash_algo": "sha256", "os_hash_value": "ab" * 32},
            },
            "os_hash_algo must be sha512",
        ),
        (
            {
                "url": "{remote}/image.raw",
                "validation_data": {"os_hash_algo": "sha512", "os_hash_value": "nothex"},
            },
            "hexadecimal",
        ),
    ],
)
def test_location_api_post_malformed_refused(alice, remote, body, message):
    client = token_client(alice)
    image_id = _queued(client)
    if "url" in body:
        body = {**body, "url": body["url"].format(remote=remote)}
    response = _post(client, image_id, body)
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert Image.objects.get(pk=image_id).status == Status.QUEUED


def test_location_admin_download_streams_the_remote_bytes_without_revealing_the_url(
    alice, admin_user, remote, client
):
    image_id = _queued(token_client(alice))
    assert _add(token_client(alice), image_id, f"{remote}/image.raw").status_code == 200
    client.force_login(admin_user)

    response = client.get(f"/admin/images/image/{image_id}/download/")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == DATA
    assert "Location" not in response.headers
    assert response["Content-Disposition"].startswith("attachment")
