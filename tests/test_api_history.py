"""images/api/history.py: GET /v2/images/{id}/history and
GET /v2/deleted-images/{id}/history, through the real URL routing and a real token."""

import io
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from images import services
from images.identity import KeystoneIdentity
from images.models import Image, ImageTransition, PurgedImage
from images.policy import can_read_deleted_history
from tests.api import token_client

pytestmark = pytest.mark.django_db


def _uploaded(actor, **fields):
    image = services.image_create(
        actor=actor, name="cirros", disk_format="raw", container_format="bare", **fields
    )
    return services.image_upload(image=image, actor=actor, stream=io.BytesIO(b"x"), declared_size=1)


def _flipped(owner, times: int, **fields):
    """An active image with 3 + 2 * times history rows."""
    image = _uploaded(owner, **fields)
    for _ in range(times):
        image = services.image_deactivate(image=image, actor=owner)
        image = services.image_reactivate(image=image, actor=owner)
    return image


def _targets(body) -> list[str]:
    return [row["target"] for row in body["history"]]


def _purged(owner, **fields):
    """An image deleted, scrubbed and purged: only its PurgedImage is left."""
    image = services.image_deactivate(image=_uploaded(owner, **fields), actor=owner)
    image = services.image_delete(image=image, actor=owner)
    later = timezone.now() + timedelta(days=400)
    services.images_scrub_due(now=later)
    assert services.images_purge(now=later + timedelta(days=400)) == 1
    return image


# --- /v2/images/{id}/history ---


def test_history_rows_are_the_transitions_oldest_first(alice):
    image = _flipped(alice, 1)
    response = token_client(alice).get(f"/v2/images/{image.pk}/history")
    assert response.status_code == 200
    body = response.json()
    assert body["image_id"] == str(image.pk)
    assert _targets(body) == ["queued", "saving", "active", "deactivated", "active"]
    first = body["history"][0]
    assert first["source"] is None
    assert first["operation"] == "create"
    assert first["actor"] == "alice"
    assert first["created_at"].endswith("Z")
    stored = list(ImageTransition.objects.filter(image=image).order_by("created_at", "id"))
    assert [row["id"] for row in body["history"]] == [t.id for t in stored]
    assert [row["reason"] for row in body["history"]] == [t.reason for t in stored]
    assert body["first"] == f"/v2/images/{image.pk}/history"
    assert "next" not in body


def test_history_pages_follow_next_to_the_end(alice):
    image = _flipped(alice, 3)  # 9 rows
    client = token_client(alice)
    url, seen, pages = f"/v2/images/{image.pk}/history?limit=4", [], 0
    while url:
        body = client.get(url).json()
        seen += [row["id"] for row in body["history"]]
        pages += 1
        url = body.get("next")
    expected = list(
        ImageTransition.objects.filter(image=image)
        .order_by("created_at", "id")
        .values_list("id", flat=True)
    )
    assert seen == expected
    assert pages == 3


def test_history_page_exactly_full_has_no_next(alice):
    image = _flipped(alice, 1)  # 5 rows
    body = token_client(alice).get(f"/v2/images/{image.pk}/history?limit=5").json()
    assert len(body["history"]) == 5
    assert "next" not in body


def test_history_bad_marker_or_limit_is_400(alice, bob):
    image = _uploaded(alice)
    other = _uploaded(bob)
    foreign = ImageTransition.objects.filter(image=other).first().pk
    client = token_client(alice)
    for query in (f"marker={foreign}", "marker=abc", "limit=-1"):
        response = client.get(f"/v2/images/{image.pk}/history?{query}")
        assert response.status_code == 400, query
        assert response.json()["code"] == "400 Bad Request"


def test_history_visibility_follows_the_image(alice, bob, charlie, admin_user):
    private = _uploaded(alice, visibility="private")
    public = _uploaded(admin_user, visibility="public", owner="alice")
    shared = _uploaded(alice, visibility="shared")
    services.image_member_add(image=shared, actor=alice, member="charlie")
    cases = [
        (alice, private, 200),
        (bob, private, 404),
        (admin_user, private, 200),
        (bob, public, 200),
        (charlie, shared, 200),
        (bob, shared, 404),
    ]
    for user, image, code in cases:
        response = token_client(user).get(f"/v2/images/{image.pk}/history")
        assert response.status_code == code, (user.username, image.visibility)
        if code == 404:
            assert response.json()["message"] == f"No image found with ID {image.pk}"


def test_history_of_pending_delete_only_for_recovery_staff(alice, recovery_staff):
    image = services.image_delete(image=_uploaded(alice), actor=alice)
    assert token_client(alice).get(f"/v2/images/{image.pk}/history").status_code == 404
    body = token_client(recovery_staff).get(f"/v2/images/{image.pk}/history").json()
    assert _targets(body) == ["queued", "saving", "active", "pending_delete"]


def test_history_unknown_or_malformed_id_is_404(alice):
    for image_id in (uuid.uuid4(), "not-a-uuid"):
        response = token_client(alice).get(f"/v2/images/{image_id}/history")
        assert response.status_code == 404
        assert response.json()["code"] == "404 Not Found"


def test_history_needs_sign_in(alice):
    image = _uploaded(alice)
    from rest_framework.test import APIClient

    assert APIClient().get(f"/v2/images/{image.pk}/history").status_code == 401


def test_history_browsable_page_renders(alice, client):
    image = _uploaded(alice)
    client.force_login(alice)
    response = client.get(f"/v2/images/{image.pk}/history", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    page = response.content.decode()
    assert "&quot;operation&quot;: &quot;upload&quot;" in page
    paged = client.get(f"/v2/images/{image.pk}/history?limit=1", HTTP_ACCEPT="text/html")
    assert f'href="/v2/images/{image.pk}/history?limit=1&amp;marker=' in paged.content.decode()
    shown = client.get(f"/v2/images/{image.pk}", HTTP_ACCEPT="text/html").content.decode()
    assert f'href="/v2/images/{image.pk}/history"' in shown


def test_history_in_openapi_document(alice, client):
    client.force_login(alice)
    document = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    own = document["paths"]["/v2/images/{id}/history"]["get"]
    deleted = document["paths"]["/v2/deleted-images/{id}/history"]["get"]
    assert own["operationId"] == "image_history"
    assert deleted["operationId"] == "deleted_image_history"
    assert {p["name"] for p in own["parameters"]} >= {"limit", "marker"}
    assert {"200", "403", "404"} <= set(deleted["responses"])


# --- /v2/deleted-images/{id}/history ---


def test_deleted_history_after_purge_has_the_same_rows(alice, admin_user):
    image = _uploaded(alice)
    client = token_client(admin_user)
    before = client.get(f"/v2/images/{image.pk}/history").json()["history"]
    image = services.image_delete(image=image, actor=alice)
    rows_before_purge = client.get(f"/v2/deleted-images/{image.pk}/history").json()["history"]
    later = timezone.now() + timedelta(days=400)
    services.images_scrub_due(now=later)
    assert services.images_purge(now=later + timedelta(days=400)) == 1
    assert not Image.objects.filter(pk=image.pk).exists()
    response = client.get(f"/v2/deleted-images/{image.pk}/history")
    assert response.status_code == 200
    body = response.json()
    assert body["history"][: len(before)] == before
    assert body["history"][: len(rows_before_purge)] == rows_before_purge
    assert _targets(body) == ["queued", "saving", "active", "pending_delete", "deleted"]
    assert body["image"]["id"] == str(image.pk)
    assert body["image"]["status"] == "purged"
    assert body["image"]["owner"] == "alice"
    assert body["image"]["size"] == 1
    assert body["image"]["purged_at"].endswith("Z")


def test_deleted_history_pages_a_purged_record(alice, admin_user):
    image = _purged(alice)  # 6 rows
    client = token_client(admin_user)
    first = client.get(f"/v2/deleted-images/{image.pk}/history?limit=4").json()
    second = client.get(first["next"]).json()
    assert _targets(first) == ["queued", "saving", "active", "deactivated"]
    assert _targets(second) == ["pending_delete", "deleted"]
    assert "next" not in second
    assert first["next"] == (
        f"/v2/deleted-images/{image.pk}/history?limit=4&marker={first['history'][-1]['id']}"
    )


def test_deleted_history_refused_to_owner_and_staff_without_the_right(
    alice, recovery_staff, django_user_model
):
    image = _purged(alice)
    for user in (alice, recovery_staff):
        response = token_client(user).get(f"/v2/deleted-images/{image.pk}/history")
        assert response.status_code == 403
        assert response.json()["message"] == (
            "You are not permitted to read the history of deleted images."
        )


def test_deleted_history_allowed_to_image_administrators(alice, django_user_model, admin_roles):
    image = _purged(alice)
    ingrid = django_user_model.objects.create_user("ingrid", password="pw", is_staff=True)
    ingrid.groups.add(Group.objects.get(name="Image administrators"))
    response = token_client(ingrid).get(f"/v2/deleted-images/{image.pk}/history")
    assert response.status_code == 200


def test_deleted_history_allowed_by_the_view_permission(alice, bob):
    image = _purged(alice)
    bob.user_permissions.add(Permission.objects.get(codename="view_purgedimage"))
    assert token_client(bob).get(f"/v2/deleted-images/{image.pk}/history").status_code == 200


def test_deleted_history_unknown_live_or_malformed_id_is_404(alice, admin_user):
    live = _uploaded(alice)
    client = token_client(admin_user)
    for image_id in (uuid.uuid4(), live.pk, "not-a-uuid"):
        response = client.get(f"/v2/deleted-images/{image_id}/history")
        assert response.status_code == 404
        assert response.json()["message"] == f"No deleted image found with ID {image_id}"
    assert PurgedImage.objects.count() == 0


def test_deleted_history_keystone_rule_defaults_to_admins():
    def identity(*roles):
        return KeystoneIdentity(
            user_id="u", user_name="u", project_id="p", project_name="p", roles=frozenset(roles)
        )

    assert can_read_deleted_history(identity("admin", "member", "reader"))
    assert not can_read_deleted_history(identity("member", "reader"))
    assert not can_read_deleted_history(identity("image_recovery"))


def test_deleted_history_keystone_rule_follows_the_policy_file(settings, tmp_path):
    from images import glance_rules

    path = tmp_path / "policy.yaml"
    path.write_text('"get_deleted_image_history": "role:auditor"\n')
    settings.IMAGES_POLICY_FILE = path
    glance_rules.enforcer.cache_clear()
    try:
        auditor = KeystoneIdentity(
            user_id="u",
            user_name="u",
            project_id="p",
            project_name="p",
            roles=frozenset({"auditor"}),
        )
        assert can_read_deleted_history(auditor)
    finally:
        glance_rules.enforcer.cache_clear()


def test_deleted_history_browsable_page_renders(alice, admin_user, client):
    image = _purged(alice)
    client.force_login(admin_user)
    response = client.get(f"/v2/deleted-images/{image.pk}/history?limit=2", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Deleted image history" in page
    assert "purged" in page
    assert f'href="/v2/deleted-images/{image.pk}/history?limit=2&amp;marker=' in page
