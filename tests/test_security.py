"""Nobody is let in who should not be: authentication on every URL, who sees which image,
CSRF on session writes, the production settings, throttling, and the size cap and quota
enforced while the bytes stream in."""

import http.client
import json
import os
import re
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import requests
from django.contrib.admindocs.views import simplify_regex
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.test import Client
from django.urls import URLResolver, get_resolver
from rest_framework.authtoken.models import Token

from images.enums import MemberStatus, Status
from images.models import Image, ImageMember, ImageTag
from tests.api import PATCH_V21, create, token_client
from tests.live import ROOT, running_registry

# --- authentication on every URL ------------------------------------------------------------

# Open to everyone: Glance's version discovery, and the pages where one signs in or out.
OPEN = {"/", "/versions", "/v2", "/v2/", "/admin/login/", "/api-auth/login/"}
# Signing out needs no signed-in user; anonymously it only sends you to the sign-in page.
SIGN_OUT = {"/admin/logout/", "/api-auth/logout/"}
LOGIN_PAGES = ("/admin/login/", "/api-auth/login/")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _patterns(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield simplify_regex(prefix + str(pattern.pattern))


def url_paths(values: dict[str, str]) -> list[str]:
    """Every URL pattern of the URLconf, its parameters filled in from `values`."""
    paths = set()
    for route in _patterns(get_resolver().url_patterns):
        paths.add(re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values.get(m.group(1), "x"), route))
    return sorted(paths)


@pytest.mark.django_db
def test_every_url_but_versions_and_sign_in_refuses_anonymous_callers(alice, bob, make_image):
    image = make_image("active", owner="alice", visibility="public")
    ImageTag.objects.create(image=image, value="t1")
    ImageMember.objects.create(image=image, member="bob")
    values = {
        "pk": str(image.pk),
        "object_id": str(image.pk),
        "id": str(alice.pk),
        "tag": "t1",
        "member_id": "bob",
        "app_label": "images",
        "content_type_id": str(ContentType.objects.get_for_model(Image).pk),
        "name": "deactivate",
    }
    paths = url_paths(values)
    assert len(paths) > 60  # the walk found the API, the admin and the docs
    assert {"/v2/images", f"/v2/images/{image.pk}/file", "/api/schema/"} <= set(paths)
    browser = Client()
    leaks = []
    for path in paths:
        for method in METHODS:
            response = browser.generic(method, path, HTTP_ACCEPT="application/json")
            location = response.get("Location", "")
            if path in OPEN:
                continue
            if path in SIGN_OUT:
                # Signing out anonymously ends nothing; its page shows no data.
                assert response.status_code in (200, 302, 405), (method, path)
                assert str(image.pk) not in response.content.decode()
                continue
            refused = response.status_code in (401, 403) or (
                response.status_code == 302 and location.startswith(LOGIN_PAGES)
            )
            if not refused:
                leaks.append(f"{method} {path} -> {response.status_code} {location}")
    assert leaks == []
    # Nothing was changed by all those anonymous writes.
    image.refresh_from_db()
    assert (image.status, image.visibility, image.tags.count()) == ("active", "public", 1)
    for path in sorted(OPEN - {"/admin/login/", "/api-auth/login/"}):
        assert browser.get(path).status_code in (200, 300)


@pytest.mark.django_db
def test_api_refusal_of_anonymous_caller_is_401_with_glance_body():
    response = Client().get("/v2/images", HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Token realm="image registry"'
    assert response.json() == {
        "message": "Authentication credentials were not provided.",
        "code": "401 Unauthorized",
        "title": "Unauthorized",
    }


# --- who sees which image ---------------------------------------------------------------------


def _views_of(client, image_id) -> dict[str, int]:
    """What each way of reaching an image answers for this caller."""
    base = f"/v2/images/{image_id}"
    listed = client.get("/v2/images").json()["images"]
    data = client.get(f"{base}/file")
    if data.streaming:  # read to the end: the test client then closes the file
        b"".join(data.streaming_content)
    return {
        "show": client.get(base).status_code,
        "file": data.status_code,
        "members": client.get(f"{base}/members").status_code,
        "listed": any(i["id"] == str(image_id) for i in listed),
        "by id": len(client.get(f"/v2/images?id={image_id}").json()["images"]),
    }


def _writes_of(client, image_id) -> dict[str, int]:
    base = f"/v2/images/{image_id}"
    return {
        "patch": client.patch(
            base,
            json.dumps([{"op": "replace", "path": "/name", "value": "taken"}]),
            content_type=PATCH_V21,
        ).status_code,
        "tag": client.put(f"{base}/tags/mine").status_code,
        "deactivate": client.post(f"{base}/actions/deactivate").status_code,
        "share": client.post(f"{base}/members", {"member": "charlie"}, format="json").status_code,
        "upload": client.put(
            f"{base}/file", b"x", content_type="application/octet-stream"
        ).status_code,
        "delete": client.delete(base).status_code,
    }


NOT_FOUND = {"show": 404, "file": 404, "members": 404, "listed": False, "by id": 0}
WRITES_NOT_FOUND = dict.fromkeys(["patch", "tag", "deactivate", "share", "upload", "delete"], 404)


@pytest.mark.django_db
def test_private_image_is_404_for_everyone_but_owner_and_staff(
    alice, bob, admin_user, recovery_staff, django_user_model, make_image
):
    image = make_image("active", owner="alice", visibility="private")
    staff_without_permission = django_user_model.objects.create_user(username="stan", is_staff=True)
    for stranger in (bob, staff_without_permission):
        client = token_client(stranger)
        assert _views_of(client, image.pk) == NOT_FOUND
        assert _writes_of(client, image.pk) == WRITES_NOT_FOUND
        # The refusal reads exactly like the one for an image that does not exist.
        missing = "8c4a1b3e-06a4-4bb4-8c4e-9b2ef4d1a3c1"
        assert client.get(f"/v2/images/{image.pk}").json()["message"] == (
            client.get(f"/v2/images/{missing}").json()["message"].replace(missing, str(image.pk))
        )
        assert client.get(f"/v2/images?marker={image.pk}").status_code == 400
    for allowed in (alice, admin_user, recovery_staff):
        views = _views_of(token_client(allowed), image.pk)
        assert (views["show"], views["file"], views["by id"]) == (200, 204, 1), allowed
    image.refresh_from_db()
    assert (image.name, image.status, image.tags.count(), image.members.count()) == (
        "active-image",
        Status.ACTIVE,
        0,
        0,
    )


@pytest.mark.django_db
def test_shared_image_listed_only_for_accepted_members(alice, bob, charlie, django_user_model):
    owner = token_client(alice)
    image_id = create(
        owner, name="shared", visibility="shared", disk_format="raw", container_format="bare"
    ).json()["id"]
    assert (
        owner.put(
            f"/v2/images/{image_id}/file", b"shared bytes", content_type="application/octet-stream"
        ).status_code
        == 204
    )
    for member in ("bob", "charlie"):
        assert (
            owner.post(
                f"/v2/images/{image_id}/members", {"member": member}, format="json"
            ).status_code
            == 200
        )
    dave = token_client(django_user_model.objects.create_user(username="dave"))
    as_bob, as_charlie = token_client(bob), token_client(charlie)

    # As in Glance, a member reads the image by id whatever its answer (the openstack
    # CLI shows it before accepting); only the lists wait for an acceptance.
    offered = {"show": 200, "file": 200, "members": 200, "listed": False, "by id": 0}
    assert _views_of(as_bob, image_id) == offered
    assert _views_of(dave, image_id) == NOT_FOUND
    assert as_bob.get(f"/v2/images/{image_id}/members").json()["members"][0]["member_id"] == "bob"

    # Bob accepts, Charlie rejects: only Bob lists it now, and sees only Bob's entry.
    for client, user, answer in ((as_bob, "bob", "accepted"), (as_charlie, "charlie", "rejected")):
        response = client.put(
            f"/v2/images/{image_id}/members/{user}", {"status": answer}, format="json"
        )
        assert response.json()["status"] == answer
    assert _views_of(as_bob, image_id) == {
        "show": 200,
        "file": 200,
        "members": 200,
        "listed": True,
        "by id": 1,
    }
    download = as_bob.get(f"/v2/images/{image_id}/file")
    assert b"".join(download.streaming_content) == b"shared bytes"
    assert [
        m["member_id"] for m in as_bob.get(f"/v2/images/{image_id}/members").json()["members"]
    ] == ["bob"]
    assert _views_of(as_charlie, image_id) == offered
    assert _views_of(dave, image_id) == NOT_FOUND
    # An accepted member still may not change the image, nor answer for someone else.
    assert as_bob.delete(f"/v2/images/{image_id}").status_code == 403
    assert (
        as_bob.put(
            f"/v2/images/{image_id}/members/charlie", {"status": "accepted"}, format="json"
        ).status_code
        == 403
    )
    statuses = dict(ImageMember.objects.filter(image_id=image_id).values_list("member", "status"))
    assert statuses == {"bob": MemberStatus.ACCEPTED, "charlie": MemberStatus.REJECTED}
    assert Image.objects.get(pk=image_id).status == Status.ACTIVE


# --- CSRF on session writes (a real sign-in through the login page) -------------------------


@pytest.mark.django_db
def test_session_writes_need_csrf_token_and_token_writes_do_not(django_user_model):
    user = django_user_model.objects.create_user(username="sally", password="horse battery")
    browser = Client(enforce_csrf_checks=True, HTTP_ACCEPT="application/json")
    page = browser.get("/api-auth/login/").content.decode()
    form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    signed_in = browser.post(
        "/api-auth/login/",
        {"username": "sally", "password": "horse battery", "csrfmiddlewaretoken": form_token},
    )
    assert signed_in.status_code == 302
    csrf = {"HTTP_X_CSRFTOKEN": browser.cookies["csrftoken"].value}
    as_json = {"content_type": "application/json"}

    refused = browser.post("/v2/images", json.dumps({"name": "forged"}), **as_json)
    assert refused.status_code == 403
    assert refused.json()["message"] == "CSRF Failed: CSRF token missing."
    assert not Image.objects.filter(name="forged").exists()
    created = browser.post("/v2/images", json.dumps({"name": "mine"}), **as_json, **csrf)
    assert created.status_code == 201 and created.json()["owner"] == "sally"
    image = f"/v2/images/{created.json()['id']}"
    rename = json.dumps([{"op": "replace", "path": "/name", "value": "forged"}])
    assert browser.patch(image, rename, content_type=PATCH_V21).status_code == 403
    assert browser.delete(image).status_code == 403
    assert browser.put(f"{image}/tags/t").status_code == 403
    unchanged = browser.get(image).json()
    assert (unchanged["name"], unchanged["tags"]) == ("mine", [])
    assert browser.patch(image, rename, content_type=PATCH_V21, **csrf).json()["name"] == ("forged")
    assert browser.delete(image, **csrf).status_code == 204

    # A token is no cookie a browser sends by itself: no CSRF token needed, even beside
    # the session cookie.
    token = Token.objects.create(user=user).key
    with_token = browser.post(
        "/v2/images", json.dumps({"name": "scripted"}), **as_json, HTTP_X_AUTH_TOKEN=token
    )
    assert with_token.status_code == 201


# --- production settings ---------------------------------------------------------------------

# The production environment the README documents (section "Production").
PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "SECRET_KEY": "e" * 10 + "9Zq_Lw3Hs8-vXn2Rk5Tb7Yc1Pd4Mf6Gj0Ua" + "x" * 20,
    "ALLOWED_HOSTS": "images.example.org",
    "DJANGO_HTTPS": "1",
    "DJANGO_SECURE_PROXY": "1",
    "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "1",
    "DJANGO_HSTS_PRELOAD": "1",
}


def _manage(*args, **env):
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMAGES_", "DJANGO_", "SECRET_KEY", "ALLOWED_HOSTS"))
    }
    environ.update({"DATABASE_URL": "sqlite:///:memory:", **env})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_pass_check_deploy_without_warnings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_are_documented_in_readme():
    readme = (ROOT / "README.md").read_text()
    for name in [*PRODUCTION, "CSRF_TRUSTED_ORIGINS", "DJANGO_HSTS_SECONDS", "IMAGES_API_RATE"]:
        assert f"`{name}`" in readme, name


def test_plain_http_settings_are_flagged_by_check_deploy():
    """`make run`'s plain-http settings start, and check --deploy says what is missing."""
    result = _manage(
        "check",
        "--deploy",
        DJANGO_DEBUG="0",
        SECRET_KEY=PRODUCTION["SECRET_KEY"],
        ALLOWED_HOSTS="127.0.0.1",
    )
    assert result.returncode == 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS"])
def test_production_refuses_to_start_without(missing):
    result = _manage("check", **{**PRODUCTION, missing: ""})
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr


@pytest.mark.parametrize("value", ["lots", "10/fortnight", "0/s", "-1/m"])
def test_throttle_rate_bad_value_stops_startup(value):
    result = _manage("check", **{**PRODUCTION, "IMAGES_API_RATE": value})
    assert result.returncode != 0
    assert "IMAGES_API_RATE must be a rate such as 100/s" in result.stderr


@pytest.mark.django_db
def test_https_behind_proxy_redirects_plain_http_and_sends_hsts(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["images.example.org"]
    plain = Client().get("/versions", HTTP_HOST="images.example.org")
    assert (plain.status_code, plain["Location"]) == (301, "https://images.example.org/versions")
    proxied = Client().get(
        "/versions", HTTP_HOST="images.example.org", HTTP_X_FORWARDED_PROTO="https"
    )
    assert proxied.status_code == 200
    assert proxied["Strict-Transport-Security"] == "max-age=31536000"
    assert json.loads(proxied.content)["versions"][0]["links"][0]["href"].startswith("https://")


# --- throttling -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_throttle_answers_429_with_glance_body_and_retry_after(alice, bob, settings):
    settings.IMAGES_API_RATE = "3/m"
    settings.IMAGES_API_ANON_RATE = "2/m"
    cache.clear()
    client = token_client(alice)
    assert [client.get("/v2/images").status_code for _ in range(3)] == [200, 200, 200]
    throttled = client.get("/v2/images")
    assert throttled.status_code == 429
    assert 1 <= int(throttled["Retry-After"]) <= 60
    body = throttled.json()
    assert (body["code"], body["title"]) == ("429 Too Many Requests", "Too Many Requests")
    assert body["message"].startswith("Request was throttled. Expected available in")
    # Writes count too, and nothing is done once throttled.
    assert create(client, name="too-many").status_code == 429
    assert not Image.objects.filter(name="too-many").exists()
    # Another user has a budget of their own.
    assert token_client(bob).get("/v2/images").status_code == 200
    # Anonymous callers (the versions document) are counted by address.
    anonymous = Client()
    assert [anonymous.get("/versions").status_code for _ in range(3)] == [200, 200, 429]
    settings.IMAGES_API_RATE = None
    settings.IMAGES_API_ANON_RATE = None
    assert client.get("/v2/images").status_code == 200
    cache.clear()


# --- the size cap and the storage quota, while streaming through the real server --------------


def _chunked_upload(url, token, image_id, data: bytes, *, declared: int | None = None):
    """An upload as glanceclient sends it: Transfer-Encoding chunked, no Content-Length."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.putrequest("PUT", f"/v2/images/{image_id}/file")
        conn.putheader("X-Auth-Token", token)
        conn.putheader("Accept", "application/json")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Transfer-Encoding", "chunked")
        if declared is not None:
            conn.putheader("x-openstack-image-size", str(declared))
        conn.endheaders()
        step = 64 * 1024
        try:
            for start in range(0, len(data), step):
                chunk = data[start : start + step]
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before reading it all
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _new_image(url, token, name) -> str:
    response = requests.post(
        f"{url}/v2/images",
        json={"name": name, "disk_format": "raw", "container_format": "bare"},
        headers={"X-Auth-Token": token},
    )
    return response.json()["id"]


def _status(url, token, image_id) -> str:
    return requests.get(f"{url}/v2/images/{image_id}", headers={"X-Auth-Token": token}).json()[
        "status"
    ]


def test_size_cap_and_quota_enforced_while_streaming_with_413_and_nothing_stored(tmp_path):
    MiB = 1024 * 1024
    env = {"IMAGES_SIZE_CAP": "1MB", "IMAGES_USER_STORAGE_QUOTA": "2MB"}
    with running_registry(tmp_path, env=env) as server:
        url, token = server.url, server.tokens["alice"]

        def stored():
            return sorted(p.name for p in server.store.rglob("*"))

        over_cap = _new_image(url, token, "over-cap")
        status, body = _chunked_upload(url, token, over_cap, os.urandom(MiB + 1))
        assert status == 413
        assert json.loads(body)["message"].startswith("The incoming image is too large")
        assert _status(url, token, over_cap) == "queued"
        assert stored() == []

        first = _new_image(url, token, "first")
        assert _chunked_upload(url, token, first, os.urandom(MiB))[0] == 204
        second = _new_image(url, token, "second")
        assert _chunked_upload(url, token, second, os.urandom(MiB // 2))[0] == 204
        assert stored() == sorted([first, second])

        # 0.5 MiB of quota left: a chunked upload with no declared size is cut off at it.
        third = _new_image(url, token, "third")
        status, body = _chunked_upload(url, token, third, os.urandom(MiB))
        assert status == 413
        message = json.loads(body)["message"]
        assert message.startswith("Image exceeds the storage quota")
        assert f"{MiB // 2} bytes remaining" in message
        assert _status(url, token, third) == "queued"
        # Declared too large: refused before a byte is read, and no history for it.
        status, body = _chunked_upload(url, token, third, os.urandom(1024), declared=MiB)
        assert status == 413
        assert stored() == sorted([first, second])
        assert list((tmp_path / "tmp").rglob("*")) == []
        # Another owner has a quota of their own.
        other = _new_image(url, server.tokens["bob"], "bobs")
        assert _chunked_upload(url, server.tokens["bob"], other, os.urandom(MiB))[0] == 204
        # Deleting frees quota (pending_delete data no longer counts, as in Glance).
        assert (
            requests.delete(
                f"{url}/v2/images/{second}", headers={"X-Auth-Token": token}
            ).status_code
            == 204
        )
        assert _chunked_upload(url, token, third, os.urandom(MiB))[0] == 204
        assert _status(url, token, third) == "active"


@pytest.mark.django_db
def test_quota_counts_the_owners_live_images_only(alice, bob, settings, make_image):
    settings.IMAGES_USER_STORAGE_QUOTA = 1000
    for owner in ("alice", "bob"):
        held = make_image("active", owner=owner)
        Image.objects.filter(pk=held.pk).update(size=900)
    client = token_client(alice)
    image_id = create(client, name="q", disk_format="raw", container_format="bare").json()["id"]
    response = client.put(
        f"/v2/images/{image_id}/file", b"x" * 200, content_type="application/octet-stream"
    )
    assert response.status_code == 413
    assert "100 bytes remaining" in response.json()["message"]
    assert Image.objects.get(pk=image_id).status == Status.QUEUED
    image = Image.objects.get(pk=image_id)
    assert (image.size, image.checksum, image.locations.count()) == (None, None, 0)
