"""Discovery: versions, the JSON schemas the clients fetch, info, OpenAPI and the
browsable pages."""

import json

import jsonschema
import pytest

from images.api import schemas
from images.models import Image
from tests.api import create, token_client

pytestmark = pytest.mark.django_db


def test_versions_root_answers_300_and_versions_200_without_signing_in(client):
    root = client.get("/")
    versions = client.get("/versions")
    assert root.status_code == 300
    assert versions.status_code == 200
    assert root.json() == versions.json()
    current = versions.json()["versions"][0]
    assert current["id"].startswith("v2")
    assert current["status"] == "CURRENT"
    assert current["links"][0]["href"] == "http://testserver/v2/"


def test_versions_ignore_a_bad_token(client):
    response = client.get("/versions", HTTP_X_AUTH_TOKEN="not-a-token")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "name", ["image", "images", "member", "members", "metadefs/namespace", "metadefs/resource_type"]
)
def test_schemas_served_to_signed_in_users(alice, name):
    response = token_client(alice).get(f"/v2/schemas/{name}")
    assert response.status_code == 200
    assert response.json() == schemas.SCHEMAS[name]()


def test_schemas_need_signing_in(client):
    assert client.get("/v2/schemas/image").status_code == 401


def test_image_schema_has_glance_shape():
    schema = schemas.image_schema()
    assert schema["additionalProperties"] == {"type": "string"}
    assert schema["properties"]["disk_format"]["enum"][0] is None
    assert schema["properties"]["status"]["readOnly"] is True
    assert {link["rel"] for link in schema["links"]} == {"self", "enclosure", "describedby"}


BODIES = [
    {"name": "ok", "disk_format": "raw", "container_format": "bare"},
    {"name": None, "disk_format": None},
    {"name": "x" * 256},
    {"disk_format": "exe"},
    {"container_format": "zip"},
    {"visibility": "everyone"},
    {"visibility": "private", "protected": True, "os_hidden": False},
    {"protected": "yes"},
    {"min_ram": -1},
    {"min_disk": "1"},
    {"min_ram": 2048, "min_disk": 20},
    {"tags": ["a", "b"]},
    {"tags": ["x" * 256]},
    {"tags": "a"},
    {"hw_disk_bus": "virtio"},
    {"hw_disk_bus": 5},
    {"id": "8c4a1b3e-06a4-4bb4-8c4e-9b2ef4d1a3c1"},
    {"id": "not-a-uuid"},
    {"owner": "alice"},
]


@pytest.mark.parametrize("body", BODIES, ids=[json.dumps(b)[:40] for b in BODIES])
def test_image_schema_accepts_exactly_what_the_server_accepts(alice, body):
    """glanceclient validates against our schema before sending: the two must agree."""
    schema = schemas.image_schema()
    schema_ok = jsonschema.Draft4Validator(schema).is_valid(body)
    response = create(token_client(alice), **body)
    assert (response.status_code == 201) == schema_ok, response.json()


def test_info_import_lists_the_import_methods(alice, settings):
    response = token_client(alice).get("/v2/info/import")
    assert response.json() == {
        "import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": ["glance-direct", "web-download"],
        }
    }
    settings.IMAGES_IMPORT_METHODS = []
    assert token_client(alice).get("/v2/info/import").json()["import-methods"]["value"] == []


def test_info_stores_lists_the_single_store(alice):
    response = token_client(alice).get("/v2/info/stores")
    assert response.json() == {"stores": [{"id": "default", "default": True}]}


def test_openapi_schema_describes_the_image_paths(alice):
    response = token_client(alice).get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    assert "/v2/images" in paths
    assert "/v2/images/{id}/file" in paths
    assert "/v2/images/{id}/actions/restore" in paths


def test_swagger_ui_served_from_local_static_files(client, alice):
    client.force_login(alice)
    page = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn.jsdelivr" not in page


def test_browsable_image_list_is_branded_with_create_form(client, alice):
    client.force_login(alice)
    create(token_client(alice), name="in-the-browser")
    page = client.get("/v2/images", HTTP_ACCEPT="text/html").content.decode()
    assert "<title>Images \N{EN DASH} Image registry</title>" in page
    assert "Django REST framework" not in page
    assert "in-the-browser" in page
    assert 'name="disk_format"' in page  # the create form


def test_browsable_list_links_the_next_page(client, alice, make_image):
    for _ in range(2):
        make_image("queued", owner="alice")
    client.force_login(alice)
    page = client.get("/v2/images?limit=1&format=api").content.decode()
    links = page.split('class="registry-links"', 1)[1].split("</ul>", 1)[0]
    assert "Next page" in links
    assert "marker=" in links


def test_browsable_image_page_links_data_and_available_actions(client, alice, make_image):
    image = make_image("active", owner="alice")
    client.force_login(alice)
    page = client.get(f"/v2/images/{image.pk}?format=api").content.decode()
    links = page.split('class="registry-links"', 1)[1].split("</ul>", 1)[0]
    assert f"/v2/images/{image.pk}/file" in links
    assert f"/v2/images/{image.pk}/actions/deactivate" in links
    assert "actions/reactivate" not in links
    assert "actions/restore" not in links


def test_browsable_page_offers_sign_in_when_signed_out(client):
    response = client.get("/v2/images", HTTP_ACCEPT="text/html")
    assert response.status_code == 401
    assert "/api-auth/login/" in response.content.decode()


def test_browser_create_form_posts_with_session_and_csrf(alice):
    from rest_framework.test import APIClient

    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(alice)
    refused = browser.post("/v2/images", {"name": "no-csrf"}, format="multipart")
    assert refused.status_code == 403
    assert "CSRF" in refused.content.decode()

    browser.get("/v2/images?format=api")  # the page sets the CSRF cookie
    created = browser.post(
        "/v2/images",
        {"name": "from-form", "disk_format": "qcow2", "protected": "true"},
        format="multipart",
        HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value,
    )
    assert created.status_code == 201
    image = Image.objects.get(name="from-form")
    assert (image.owner, image.disk_format, image.protected) == ("alice", "qcow2", True)
    assert not Image.objects.filter(name="no-csrf").exists()
