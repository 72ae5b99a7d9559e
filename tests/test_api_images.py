"""/v2/images and /v2/images/{id}: create, show, patch, delete, tags, actions,
members; authentication and Glance's error bodies."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.test import override_settings
from django.utils import timezone

from images.enums import Status
from images.models import Image, ImageMember, ImageTransition
from tests.api import PATCH_V20, create, patch, token_client

pytestmark = pytest.mark.django_db


# --- authentication ------------------------------------------------------------------


def test_auth_x_auth_token_and_authorization_token_both_sign_in(alice):
    for header in ("X-Auth-Token", "Authorization"):
        response = token_client(alice, header=header).get("/v2/images")
        assert response.status_code == 200


def test_auth_missing_token_answers_401_with_challenge(client):
    response = client.get("/v2/images", HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")
    assert response.json()["code"] == "401 Unauthorized"


def test_auth_invalid_token_answers_401(client):
    response = client.get("/v2/images", HTTP_X_AUTH_TOKEN="notused", HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid token."


def test_auth_token_writes_need_no_csrf(alice):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_X_AUTH_TOKEN=token_client(alice)._credentials["HTTP_X_AUTH_TOKEN"])
    assert create(client, name="no-csrf-needed").status_code == 201


# --- error bodies -----------------------------------------------------------------------


def test_error_body_json_for_application_json(alice):
    response = token_client(alice).get("/v2/images/8c4a1b3e-06a4-4bb4-8c4e-9b2ef4d1a3c1")
    assert response.status_code == 404
    assert response.json() == {
        "message": "No image found with ID 8c4a1b3e-06a4-4bb4-8c4e-9b2ef4d1a3c1",
        "code": "404 Not Found",
        "title": "Not Found",
    }


def test_error_body_html_for_any_type(alice):
    client = token_client(alice)
    client.credentials(HTTP_X_AUTH_TOKEN=client._credentials["HTTP_X_AUTH_TOKEN"])
    response = client.get("/v2/images/nope", HTTP_ACCEPT="*/*")
    assert response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert "<title>404 Not Found</title>" in body
    assert "No image found with ID nope" in body


def test_error_body_plain_text_without_accept(alice):
    client = token_client(alice)
    client.credentials(HTTP_X_AUTH_TOKEN=client._credentials["HTTP_X_AUTH_TOKEN"])
    response = client.get("/v2/images/nope")
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode().startswith("404 Not Found\n\nNo image found with ID nope")


def test_error_method_not_allowed_lists_allowed_methods(alice):
    response = token_client(alice).put("/v2/images")
    assert response.status_code == 405
    assert response["Allow"].startswith("GET, POST")


def test_error_malformed_json_body(alice):
    response = token_client(alice).post("/v2/images", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["message"] == "Malformed JSON in request body."


# --- create ----------------------------------------------------------------------------


def test_create_returns_201_location_and_glance_shape(alice):
    response = create(
        token_client(alice), name="c1", disk_format="raw", container_format="bare", foo="bar"
    )
    assert response.status_code == 201
    body = response.json()
    image = Image.objects.get(pk=body["id"])
    assert response["Location"] == f"http://testserver/v2/images/{image.pk}"
    assert next(iter(body)) == "foo"  # extra properties first, flattened
    assert body["status"] == "queued" == image.status
    assert body["owner"] == "alice"
    assert body["visibility"] == "shared"
    assert body["self"] == f"/v2/images/{image.pk}"
    assert body["file"] == f"/v2/images/{image.pk}/file"
    assert body["schema"] == "/v2/schemas/image"
    assert body["created_at"].endswith("Z") and len(body["created_at"]) == 20
    assert [t.operation for t in image.transitions.all()] == ["create"]


def test_create_without_body_answers_400_and_creates_nothing(alice):
    response = token_client(alice).post("/v2/images", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["message"] == "Body expected in request."
    assert not Image.objects.exists()


def test_create_with_empty_object_creates_queued_image(alice):
    response = create(token_client(alice))
    assert response.status_code == 201
    assert Image.objects.get().status == Status.QUEUED


def test_create_with_chosen_id_and_duplicate_conflicts(alice):
    image_id = "8c4a1b3e-06a4-4bb4-8c4e-9b2ef4d1a3c1"
    client = token_client(alice)
    assert create(client, id=image_id).status_code == 201
    again = create(client, id=image_id)
    assert again.status_code == 409
    assert again.json()["message"] == f"Image with identifier {image_id} already exists!"


@pytest.mark.parametrize("field", ["status", "checksum", "size", "created_at", "self", "file"])
def test_create_read_only_attribute_answers_403(alice, field):
    response = create(token_client(alice), **{field: "x"})
    assert response.status_code == 403
    assert response.json()["message"] == f"Attribute '{field}' is read-only."
    assert not Image.objects.exists()


@pytest.mark.parametrize("field", ["deleted", "location", "os_glance_foo"])
def test_create_reserved_attribute_answers_403(alice, field):
    response = create(token_client(alice), **{field: "x"})
    assert response.status_code == 403
    assert response.json()["message"] == f"Attribute '{field}' is reserved."


def test_create_size_zero_is_active_at_once(alice):
    body = create(
        token_client(alice), name="empty", disk_format="raw", container_format="bare", size=0
    ).json()
    assert body["status"] == "active"
    assert body["checksum"] == "d41d8cd98f00b204e9800998ecf8427e"


def test_create_public_needs_staff(alice, admin_user):
    refused = create(token_client(alice), visibility="public")
    assert refused.status_code == 403
    assert refused.json()["message"] == "You are not authorized to create public images."
    assert create(token_client(admin_user), visibility="public").status_code == 201


def test_create_extra_property_must_be_string(alice):
    response = create(token_client(alice), hw_cpu_cores=4)
    assert response.status_code == 400
    assert "is not of type 'string'" in response.json()["message"]


# --- show, visibility -------------------------------------------------------------------


def test_show_other_users_private_image_answers_404(alice, bob, make_image):
    image = make_image("active", owner="alice", visibility="private")
    assert token_client(bob).get(f"/v2/images/{image.pk}").status_code == 404
    assert token_client(alice).get(f"/v2/images/{image.pk}").status_code == 200


def test_show_public_and_community_images_to_everyone(bob, make_image):
    for visibility in ("public", "community"):
        image = make_image("active", owner="alice", visibility=visibility)
        assert token_client(bob).get(f"/v2/images/{image.pk}").status_code == 200


def test_show_pending_delete_image_hidden_even_from_owner(alice, make_image):
    image = make_image("pending_delete", owner="alice")
    assert token_client(alice).get(f"/v2/images/{image.pk}").status_code == 404


# --- PATCH --------------------------------------------------------------------------------


@pytest.fixture
def queued(alice):
    return create(
        token_client(alice), name="p", disk_format="raw", container_format="bare", k="v"
    ).json()


def test_patch_replace_add_remove_applied_together(alice, queued):
    response = patch(
        token_client(alice),
        queued["id"],
        [
            {"op": "replace", "path": "/name", "value": "renamed"},
            {"op": "add", "path": "/os_distro", "value": "debian"},
            {"op": "remove", "path": "/k"},
            {"op": "replace", "path": "/tags", "value": ["b", "a", "a"]},
            {"op": "replace", "path": "/min_ram", "value": 256},
        ],
    )
    assert response.status_code == 200
    image = Image.objects.get(pk=queued["id"])
    assert (image.name, image.min_ram) == ("renamed", 256)
    assert dict(image.properties.values_list("name", "value")) == {"os_distro": "debian"}
    assert sorted(image.tags.values_list("value", flat=True)) == ["a", "b"]
    assert response.json()["os_distro"] == "debian"


def test_patch_v20_style(alice, queued):
    response = patch(
        token_client(alice), queued["id"], [{"replace": "/name", "value": "v20"}], PATCH_V20
    )
    assert response.status_code == 200
    assert Image.objects.get(pk=queued["id"]).name == "v20"


def test_patch_v20_add_existing_property_conflicts(alice, queued):
    response = patch(token_client(alice), queued["id"], [{"add": "/k", "value": "w"}], PATCH_V20)
    assert response.status_code == 409
    assert response.json()["message"] == "Property k already present."


def test_patch_wrong_media_type_answers_415_with_accept_patch(alice, queued):
    response = token_client(alice).patch(
        f"/v2/images/{queued['id']}", json.dumps([]), content_type="application/json"
    )
    assert response.status_code == 415
    assert "application/openstack-images-v2.1-json-patch" in response["Accept-Patch"]


def test_patch_body_must_be_array(alice, queued):
    response = patch(token_client(alice), queued["id"], {"op": "replace"})
    assert response.status_code == 400
    assert response.json()["message"] == "Request body must be a JSON array of operation objects."


def test_patch_unknown_op_answers_400(alice, queued):
    response = patch(token_client(alice), queued["id"], [{"op": "move", "path": "/name"}])
    assert response.status_code == 400
    assert response.json()["message"] == (
        "Invalid operation: `move`. It must be one of the following: add, remove, replace."
    )


def test_patch_read_only_status_answers_403_and_changes_nothing(alice, queued):
    response = patch(
        token_client(alice),
        queued["id"],
        [
            {"op": "replace", "path": "/name", "value": "should-not-stick"},
            {"op": "replace", "path": "/status", "value": "active"},
        ],
    )
    assert response.status_code == 403
    assert response.json()["message"] == "Attribute 'status' is read-only."
    assert Image.objects.get(pk=queued["id"]).name == "p"


def test_patch_remove_core_property_answers_403(alice, queued):
    response = patch(token_client(alice), queued["id"], [{"op": "remove", "path": "/name"}])
    assert response.status_code == 403
    assert response.json()["message"] == "Property name may not be removed."


def test_patch_replace_missing_extra_property_conflicts(alice, queued):
    response = patch(
        token_client(alice), queued["id"], [{"op": "replace", "path": "/nope", "value": "x"}]
    )
    assert response.status_code == 409
    assert response.json()["message"] == "Property nope does not exist."


def test_patch_format_of_active_image_answers_403(alice, make_image):
    image = make_image("active", owner="alice")
    response = patch(
        token_client(alice), image.pk, [{"op": "replace", "path": "/disk_format", "value": "qcow2"}]
    )
    assert response.status_code == 403
    assert (
        response.json()["message"]
        == "Attribute disk_format can be only replaced for a queued image."
    )


def test_patch_owner_by_non_admin_answers_403(alice, queued):
    response = patch(
        token_client(alice), queued["id"], [{"op": "replace", "path": "/owner", "value": "bob"}]
    )
    assert response.status_code == 403
    assert response.json()["message"] == "Owner can't be updated by non admin."


def test_patch_someone_elses_public_image_answers_403(bob, make_image):
    image = make_image("active", owner="alice", visibility="public")
    response = patch(
        token_client(bob), image.pk, [{"op": "replace", "path": "/name", "value": "x"}]
    )
    assert response.status_code == 403


def test_patch_escaped_json_pointer(alice, queued):
    response = patch(
        token_client(alice), queued["id"], [{"op": "add", "path": "/a~1b~0c", "value": "x"}]
    )
    assert response.status_code == 200
    assert response.json()["a/b~c"] == "x"


# --- delete --------------------------------------------------------------------------------


def test_delete_active_image_goes_pending_delete_and_keeps_data(alice, make_image):
    image = make_image("active", owner="alice")
    response = token_client(alice).delete(f"/v2/images/{image.pk}")
    assert response.status_code == 204
    image.refresh_from_db()
    assert image.status == Status.PENDING_DELETE
    assert ImageTransition.objects.filter(image=image, operation="delete", actor="alice").exists()
    assert token_client(alice).delete(f"/v2/images/{image.pk}").status_code == 404


@override_settings(IMAGES_DELAYED_DELETE=False)
def test_delete_without_delayed_delete_goes_deleted(alice, make_image):
    image = make_image("active", owner="alice")
    assert token_client(alice).delete(f"/v2/images/{image.pk}").status_code == 204
    image.refresh_from_db()
    assert image.status == Status.DELETED


def test_delete_protected_image_answers_403(alice, make_image):
    image = make_image("active", owner="alice", protected=True)
    response = token_client(alice).delete(f"/v2/images/{image.pk}")
    assert response.status_code == 403
    assert response.json()["message"] == f"Image {image.pk} is protected and cannot be deleted."
    image.refresh_from_db()
    assert image.status == Status.ACTIVE


def test_delete_deactivated_image_goes_pending_delete(alice, make_image):
    """Glance answers 400 here with delayed delete on; we keep it restorable."""
    image = make_image("deactivated", owner="alice")
    assert token_client(alice).delete(f"/v2/images/{image.pk}").status_code == 204
    image.refresh_from_db()
    assert image.status == Status.PENDING_DELETE


# --- tags -----------------------------------------------------------------------------------


def test_tags_put_is_idempotent_and_delete_removes(alice, queued):
    client = token_client(alice)
    url = f"/v2/images/{queued['id']}/tags/golden"
    assert client.put(url).status_code == 204
    assert client.put(url).status_code == 204
    assert list(Image.objects.get(pk=queued["id"]).tags.values_list("value", flat=True)) == [
        "golden"
    ]
    assert client.delete(url).status_code == 204
    missing = client.delete(url)
    assert missing.status_code == 404
    assert not Image.objects.get(pk=queued["id"]).tags.exists()


def test_tags_too_long_answers_400(alice, queued):
    response = token_client(alice).put(f"/v2/images/{queued['id']}/tags/{'x' * 256}")
    assert response.status_code == 400


def test_tags_over_quota_answers_413(alice, queued):
    client = token_client(alice)
    for i in range(128):
        assert client.put(f"/v2/images/{queued['id']}/tags/t{i}").status_code == 204
    response = client.put(
        f"/v2/images/{queued['id']}/tags/one-more", HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 413
    assert response.json()["message"].startswith("Maximum number of tags exceeded")
    assert Image.objects.get(pk=queued["id"]).tags.count() == 128


# --- actions ----------------------------------------------------------------------------------


def test_deactivate_and_reactivate_record_history(alice, make_image):
    image = make_image("active", owner="alice")
    client = token_client(alice)
    assert client.post(f"/v2/images/{image.pk}/actions/deactivate").status_code == 204
    image.refresh_from_db()
    assert image.status == Status.DEACTIVATED
    assert client.post(f"/v2/images/{image.pk}/actions/reactivate").status_code == 204
    image.refresh_from_db()
    assert image.status == Status.ACTIVE
    assert list(image.transitions.values_list("operation", flat=True)) == [
        "deactivate",
        "reactivate",
    ]


def test_deactivate_queued_image_answers_403(alice, queued):
    response = token_client(alice).post(f"/v2/images/{queued['id']}/actions/deactivate")
    assert response.status_code == 403
    assert response.json()["message"] == "Not allowed to deactivate image in status 'queued'"


def test_restore_by_recovery_staff_returns_image_to_previous_status(
    alice, recovery_staff, make_image
):
    image = make_image("pending_delete", owner="alice")
    response = token_client(recovery_staff).post(f"/v2/images/{image.pk}/actions/restore")
    assert response.status_code == 204
    image.refresh_from_db()
    assert image.status == Status.ACTIVE
    assert image.transitions.get().actor == "rita"


def test_show_pending_delete_image_to_recovery_staff(recovery_staff, make_image):
    image = make_image("deactivated", owner="alice")
    image.mark_pending_delete(now=timezone.now())
    image.save()
    shown = token_client(recovery_staff).get(f"/v2/images/{image.pk}")
    assert shown.status_code == 200
    body = shown.json()
    assert body["status"] == "pending_delete"
    assert body["deleted_at"] and body["os_glance_scrub_at"] > body["deleted_at"]
    assert body["os_glance_restore_status"] == "deactivated"


def test_show_pending_delete_image_to_owner_and_superuser_without_permission_is_404(
    alice, django_user_model, make_image
):
    image = make_image("pending_delete", owner="alice")
    helper = django_user_model.objects.create_user("helper", password="pw", is_staff=True)
    helper.user_permissions.add(*Permission.objects.filter(codename="view_image"))
    for user in (alice, helper):
        assert token_client(user).get(f"/v2/images/{image.pk}").status_code == 404


def test_show_deleted_image_is_404_for_everybody(recovery_staff, admin_user, make_image):
    image = make_image("deleted", owner="alice")
    for user in (recovery_staff, admin_user):
        response = token_client(user).get(f"/v2/images/{image.pk}")
        assert response.status_code == 404
        assert response.json()["message"] == f"No image found with ID {image.pk}"


def test_restore_without_permission_answers_404(alice, make_image):
    image = make_image("pending_delete", owner="alice")
    response = token_client(alice).post(f"/v2/images/{image.pk}/actions/restore")
    assert response.status_code == 404
    image.refresh_from_db()
    assert image.status == Status.PENDING_DELETE


def test_restore_active_image_conflicts(recovery_staff, make_image):
    image = make_image("active", owner="alice")
    response = token_client(recovery_staff).post(f"/v2/images/{image.pk}/actions/restore")
    assert response.status_code == 409
    assert "only pending_delete images can be restored" in response.json()["message"]


# --- members ------------------------------------------------------------------------------------


def test_members_share_accept_and_list(alice, bob, make_image):
    image = make_image("active", owner="alice", visibility="shared")
    owner, member = token_client(alice), token_client(bob)
    assert member.get(f"/v2/images/{image.pk}").status_code == 404

    added = owner.post(f"/v2/images/{image.pk}/members", {"member": "bob"}, format="json")
    assert added.status_code == 200
    assert added.json()["status"] == "pending"
    assert added.json()["schema"] == "/v2/schemas/member"
    pending = member.get("/v2/images", {"member_status": "pending"}).json()["images"]
    assert [i["id"] for i in pending] == [str(image.pk)]
    assert member.get("/v2/images").json()["images"] == []

    accepted = member.put(
        f"/v2/images/{image.pk}/members/bob", {"status": "accepted"}, format="json"
    )
    assert accepted.status_code == 200
    assert ImageMember.objects.get(image=image, member="bob").status == "accepted"
    assert member.get(f"/v2/images/{image.pk}").status_code == 200
    assert [i["id"] for i in member.get("/v2/images").json()["images"]] == [str(image.pk)]

    listed = owner.get(f"/v2/images/{image.pk}/members").json()
    assert [m["member_id"] for m in listed["members"]] == ["bob"]
    assert listed["schema"] == "/v2/schemas/members"


def test_members_owner_cannot_accept_for_member(alice, make_image):
    image = make_image("active", owner="alice", visibility="shared")
    client = token_client(alice)
    client.post(f"/v2/images/{image.pk}/members", {"member": "bob"}, format="json")
    response = client.put(
        f"/v2/images/{image.pk}/members/bob", {"status": "accepted"}, format="json"
    )
    assert response.status_code == 403
    assert ImageMember.objects.get(image=image).status == "pending"


def test_members_only_for_shared_images(alice, make_image):
    image = make_image("active", owner="alice", visibility="private")
    response = token_client(alice).post(
        f"/v2/images/{image.pk}/members", {"member": "bob"}, format="json"
    )
    assert response.status_code == 403
    assert not ImageMember.objects.exists()


def test_members_of_an_image_no_longer_shared_answer_as_glance(alice, bob, make_image):
    image = make_image("active", owner="alice", visibility="shared")
    owner, member = token_client(alice), token_client(bob)
    owner.post(f"/v2/images/{image.pk}/members", {"member": "bob"}, format="json")
    member.put(f"/v2/images/{image.pk}/members/bob", {"status": "accepted"}, format="json")
    image.visibility = "public"
    image.save(update_fields=["visibility"])

    listed = owner.get(f"/v2/images/{image.pk}/members")
    assert listed.status_code == 403
    assert listed.json()["message"] == (
        f"Not allowed to list members for image {image.pk}: Only shared images have members."
    )
    assert owner.get(f"/v2/images/{image.pk}/members/bob").status_code == 404
    answered = member.put(
        f"/v2/images/{image.pk}/members/bob", {"status": "rejected"}, format="json"
    )
    assert answered.status_code == 403
    assert owner.delete(f"/v2/images/{image.pk}/members/bob").status_code == 403
    assert ImageMember.objects.get(image=image, member="bob").status == "accepted"


def test_members_duplicate_conflicts_and_remove(alice, make_image):
    image = make_image("active", owner="alice", visibility="shared")
    client = token_client(alice)
    client.post(f"/v2/images/{image.pk}/members", {"member": "bob"}, format="json")
    again = client.post(f"/v2/images/{image.pk}/members", {"member": "bob"}, format="json")
    assert again.status_code == 409
    assert client.get(f"/v2/images/{image.pk}/members/bob").json()["member_id"] == "bob"
    assert client.delete(f"/v2/images/{image.pk}/members/bob").status_code == 204
    assert client.get(f"/v2/images/{image.pk}/members/bob").status_code == 404


def test_members_strangers_see_nothing(alice, charlie, make_image):
    image = make_image("active", owner="alice", visibility="shared")
    token_client(alice).post(f"/v2/images/{image.pk}/members", {"member": "bob"}, format="json")
    assert token_client(charlie).get(f"/v2/images/{image.pk}/members").status_code == 404


def test_staff_with_change_permission_may_patch_any_image(django_user_model, make_image):
    staff = django_user_model.objects.create_user(username="sam", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_image", "change_image"])
    )
    image = make_image("queued", owner="alice", visibility="private")
    response = patch(
        token_client(staff), image.pk, [{"op": "replace", "path": "/name", "value": "s"}]
    )
    assert response.status_code == 200
    assert Image.objects.get(pk=image.pk).name == "s"
