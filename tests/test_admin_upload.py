"""The image page's streaming upload and its download, through Django's test client:
the page hands the browser what images/upload.js needs (the data endpoint, the CSRF
token, the script), and the endpoint takes a session-signed PUT only with that token.
The browser itself drives them in tests/browser/test_admin_upload_browser.py."""

import hashlib
import io
import json
import re
from html import unescape
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from images import services
from images.enums import Operation, Status
from images.models import Image, ImageTransition

pytestmark = pytest.mark.django_db

S = Status


def change_page(image: Image) -> str:
    return f"/admin/images/image/{image.pk}/change/"


def queued(actor, **fields) -> Image:
    return services.image_create(actor=actor, disk_format="raw", container_format="bare", **fields)


def stored(actor, data: bytes, **fields) -> Image:
    return services.image_upload(
        image=queued(actor, **fields), actor=actor, stream=io.BytesIO(data), declared_size=len(data)
    )


def csrf_client(user) -> tuple[Client, str]:
    """A browser's session: CSRF enforced, signed in, and the token its page carries."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client, client.get("/admin/").cookies["csrftoken"].value


def put_data(client: Client, image: Image, data: bytes, **headers):
    """What images/upload.js sends."""
    return client.put(
        f"/v2/images/{image.pk}/file",
        data,
        content_type="application/octet-stream",
        headers={"Accept": "application/json", "x-openstack-image-size": str(len(data)), **headers},
    )


# --- the page -------------------------------------------------------------------------


def test_upload_panel_points_the_script_at_the_images_data_endpoint(client, admin_user, alice):
    image = queued(alice, name="empty")
    client.force_login(admin_user)
    page = unescape(client.get(change_page(image)).content.decode())
    panel = page[page.index('id="upload"') : page.index("</script>", page.index('id="upload"'))]
    assert f'data-upload-endpoint="/v2/images/{image.pk}/file"' in panel
    assert f'data-image-endpoint="/v2/images/{image.pk}"' in panel
    assert re.search(r'name="csrfmiddlewaretoken" value="\w+"', panel)
    assert '<progress value="0" max="1"></progress>' in panel
    assert ">Cancel</button>" in panel
    assert '<script src="/static/images/upload.js" defer>' in panel
    # Without JavaScript the form still works, and says what it costs.
    assert f'action="/admin/images/image/{image.pk}/upload/"' in panel
    assert "the server writes the whole file to a temporary file" in panel


def test_upload_panel_script_is_a_static_file_of_the_app(client):
    script = finders.find("images/upload.js")
    assert script is not None
    source = Path(script).read_text(encoding="utf-8")
    assert 'xhr.open("PUT", panel.dataset.uploadEndpoint)' in source
    assert "xhr.upload.onprogress" in source
    assert "xhr.abort()" in source
    assert "https://" not in source  # nothing fetched from elsewhere


def test_upload_panel_is_absent_once_the_image_has_data(client, admin_user, alice):
    image = stored(alice, b"bytes", name="full")
    client.force_login(admin_user)
    page = client.get(change_page(image)).content.decode()
    assert 'id="upload"' not in page
    assert "upload.js" not in page


# --- the data endpoint, as the script calls it -----------------------------------------


def test_session_upload_streams_into_the_image_with_the_csrf_token(admin_user, alice, payload):
    image = queued(alice, name="web")
    client, token = csrf_client(admin_user)
    response = put_data(client, image, payload, **{"X-CSRFToken": token})
    assert response.status_code == 204
    image.refresh_from_db()
    assert (image.status, image.size) == (S.ACTIVE, len(payload))
    assert image.checksum == hashlib.md5(payload).hexdigest()
    upload = ImageTransition.objects.get(image=image, target=S.ACTIVE)
    assert (upload.operation, upload.actor) == (Operation.UPLOAD, "admin")


def test_session_upload_without_the_csrf_token_is_refused(admin_user, alice):
    image = queued(alice, name="web")
    client, _ = csrf_client(admin_user)
    response = put_data(client, image, b"forged")
    assert response.status_code == 403
    assert "CSRF" in json.loads(response.content)["message"]
    image.refresh_from_db()
    assert (image.status, image.size) == (S.QUEUED, None)
    assert not ImageTransition.objects.filter(image=image, operation=Operation.UPLOAD).exists()


def test_session_upload_refusal_is_a_glance_message_for_the_page(admin_user, alice, settings):
    """The script shows `message` from the body: here a declared size over the cap."""
    settings.IMAGES_SIZE_CAP = 1000
    image = queued(alice, name="web")
    client, token = csrf_client(admin_user)
    with_cap = {"X-CSRFToken": token, "x-openstack-image-size": "2000"}
    response = put_data(client, image, b"small", **with_cap)
    assert response.status_code == 413
    body = json.loads(response.content)
    assert body["code"] == "413 Request Entity Too Large"
    assert body["message"] == "The incoming image is too large: the size cap is 1000 bytes."
    image.refresh_from_db()
    assert image.status == S.QUEUED


# --- download ---------------------------------------------------------------------------


def test_admin_download_streams_with_its_length_and_md5(client, admin_user, alice, payload):
    image = stored(alice, payload, name="web")
    client.force_login(admin_user)
    response = client.get(f"/admin/images/image/{image.pk}/download/")
    assert response.streaming
    assert response["Content-Length"] == str(len(payload))
    assert response["Content-MD5"] == hashlib.md5(payload).hexdigest()
    assert response["Content-Disposition"] == 'attachment; filename="web.raw"'
    body = b"".join(response.streaming_content)
    response.close()
    assert body == payload


def test_admin_download_names_the_file_safely(client, admin_user, alice):
    image = stored(alice, b"data", name='a "quoted" name')
    client.force_login(admin_user)
    response = client.get(f"/admin/images/image/{image.pk}/download/")
    response.close()
    assert response["Content-Disposition"] == 'attachment; filename="a \\"quoted\\" name.raw"'
    assert response["Content-Length"] == "4"
