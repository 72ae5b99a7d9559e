"""images/policy.py: one answer to "what may this actor do to this image now".

The table test walks every status, role and action and checks that the API does
exactly what `allowed_actions` says, that the browsable page offers exactly that,
and that the admin page shows a button exactly for it.
"""

import io
import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from images import services
from images.enums import MemberStatus, Status
from images.models import Image, ImageMember
from images.policy import Action, allowed_actions
from tests.api import token_client
from tests.factories import image_in

pytestmark = pytest.mark.django_db

ROLES = ["owner", "other user", "member", "image administrator", "recovery staff", "superuser"]


@pytest.fixture
def cast(django_user_model, admin_roles):
    def user(name, **extra):
        return django_user_model.objects.create_user(username=name, password="pw", **extra)

    ingrid = user("ingrid", is_staff=True)
    ingrid.groups.add(Group.objects.get(name="Image administrators"))
    ross = user("ross", is_staff=True)
    ross.groups.add(Group.objects.get(name="Recovery staff"))
    return {
        "owner": user("alice"),
        "other user": user("bob"),
        "member": user("charlie"),
        "image administrator": ingrid,
        "recovery staff": ross,
        "superuser": django_user_model.objects.create_superuser("root", password="pw"),
    }


def shared_image(status: str) -> Image:
    """An image of alice's in `status`, shared with charlie (who accepted); one that
    reached `active` has real data, uploaded and deleted through the services."""
    if status in (Status.ACTIVE, Status.DEACTIVATED, Status.PENDING_DELETE):
        image = services.image_create(
            actor="operator",
            owner="alice",
            visibility="shared",
            name="table",
            disk_format="raw",
            container_format="bare",
        )
        image = services.image_upload(
            image=image, actor="operator", stream=io.BytesIO(b"bytes"), declared_size=5
        )
        if status == Status.DEACTIVATED:
            image = services.image_deactivate(image=image, actor="operator")
        if status == Status.PENDING_DELETE:
            image = services.image_delete(image=image, actor="operator")
    else:
        image = image_in(status, owner="alice", visibility="shared", name="table")
    ImageMember.objects.create(image=image, member="charlie", status=MemberStatus.ACCEPTED)
    return image


def visible(user, image: Image) -> bool:
    if image.status == Status.DELETED:
        return False
    if image.status == Status.PENDING_DELETE:
        return user.has_perm("images.restore_image")
    return user.username in ("alice", "charlie") or user.has_perm("images.view_image")


def expected(user, image: Image) -> set[Action]:
    return set(allowed_actions(user, image)) if visible(user, image) else set()


# --- the API: each action tried on a fresh image, judged by what it changed -----------


def _performed(user, status: str, action: Action) -> bool:
    image = shared_image(status)
    client = token_client(user)
    base = f"/v2/images/{image.pk}"
    match action:
        case Action.EDIT:
            client.patch(
                base,
                '[{"op": "replace", "path": "/name", "value": "renamed"}]',
                content_type="application/openstack-images-v2.1-json-patch",
            )
        case Action.UPLOAD:
            client.put(f"{base}/file", b"data", content_type="application/octet-stream")
        case Action.DOWNLOAD:
            response = client.get(f"{base}/file")
            # Reading the stream to its end closes the response, as a WSGI server would
            # (closing it again would close the test's database connection).
            data = b"".join(response.streaming_content) if response.streaming else b""
            return response.status_code == 200 and data == b"bytes"
        case Action.DEACTIVATE | Action.REACTIVATE | Action.RESTORE:
            client.post(f"{base}/actions/{action}")
        case Action.DELETE:
            client.delete(base)
        case Action.SCRUB:
            return False  # not offered over the API: the scrubber and the admin scrub
    before = image.status
    image.refresh_from_db()
    return image.name == "renamed" if action == Action.EDIT else image.status != before


API_ACTIONS = [action for action in Action if action != Action.SCRUB]


@pytest.mark.parametrize("status", Status.values)
@pytest.mark.parametrize("role", ROLES)
def test_policy_table_api_does_what_allowed_actions_says(cast, status, role):
    user = cast[role]
    want = expected(user, shared_image(status)) - {Action.SCRUB}
    done = {action for action in API_ACTIONS if _performed(user, status, action)}
    assert done == want


# --- the browsable API: links and forms shown exactly for what is allowed ---------------

LINKS = {
    Action.DOWNLOAD: "Image data (download)",
    Action.UPLOAD: "Upload data (PUT)",
    Action.DEACTIVATE: "Deactivate (POST)",
    Action.REACTIVATE: "Reactivate (POST)",
    Action.RESTORE: "Restore (POST)",
}


@pytest.mark.parametrize("status", Status.values)
@pytest.mark.parametrize("role", ROLES)
def test_policy_table_browsable_page_offers_what_allowed_actions_says(client, cast, status, role):
    user = cast[role]
    image = shared_image(status)
    want = expected(user, image)
    client.force_login(user)
    page = client.get(f"/v2/images/{image.pk}", HTTP_ACCEPT="text/html")
    if not visible(user, image):
        assert page.status_code == 404
        return
    html = page.content.decode()
    shown = {action for action, label in LINKS.items() if label in html}
    if re.search(r'data-method="DELETE"|Make a DELETE request', html):
        shown.add(Action.DELETE)
    if 'data-method="PATCH"' in html or "Make a PATCH request" in html:
        shown.add(Action.EDIT)
    assert shown == want & (set(LINKS) | {Action.DELETE, Action.EDIT})


# --- the admin: a button exactly for what is allowed -------------------------------------

ADMIN_BUTTONS = {
    Action.DEACTIVATE: 'value="deactivate"',
    Action.REACTIVATE: 'value="reactivate"',
    Action.RESTORE: 'value="restore"',
    Action.DOWNLOAD: ">Download data</a>",
    Action.UPLOAD: ">Upload data</a>",
    Action.DELETE: ">Delete…</a>",
    Action.SCRUB: ">Scrub now…</a>",
    Action.EDIT: 'name="_save"',
}


@pytest.mark.parametrize("status", Status.values)
@pytest.mark.parametrize("role", ROLES)
def test_policy_table_admin_page_shows_what_allowed_actions_says(client, cast, status, role):
    user = cast[role]
    image = shared_image(status)
    client.force_login(user)
    page = client.get(f"/admin/images/image/{image.pk}/change/")
    if not user.is_staff:
        assert page.status_code == 302  # the admin is for staff; the API serves the rest
        return
    assert page.status_code == 200
    html = page.content.decode()
    shown = {action for action, marker in ADMIN_BUTTONS.items() if marker in html}
    # The admin sees every record, deleted ones included: its buttons are the policy's.
    assert shown == set(allowed_actions(user, image))


# --- single cells, stated outright ---------------------------------------------------


def test_allowed_actions_owner_of_active_image(cast):
    image = shared_image(Status.ACTIVE)
    assert allowed_actions(cast["owner"], image) == {
        Action.EDIT,
        Action.DOWNLOAD,
        Action.DEACTIVATE,
        Action.DELETE,
    }


def test_allowed_actions_protected_image_cannot_be_deleted_by_anyone(cast):
    image = image_in(Status.ACTIVE, owner="alice", protected=True)
    for user in cast.values():
        assert Action.DELETE not in allowed_actions(user, image)


def test_allowed_actions_restore_stops_once_the_scrub_began(cast):
    image = image_in(Status.PENDING_DELETE, owner="alice")
    assert Action.RESTORE in allowed_actions(cast["recovery staff"], image)
    image.scrub_started_at = timezone.now()
    assert Action.RESTORE not in allowed_actions(cast["recovery staff"], image)


def test_allowed_actions_permission_without_staff_flag_is_enough(django_user_model):
    """A permission means what its name says, staff or not."""
    helper = django_user_model.objects.create_user("helper", password="pw")
    helper.user_permissions.add(*Permission.objects.filter(codename="restore_image"))
    image = image_in(Status.PENDING_DELETE, owner="alice")
    assert allowed_actions(helper, image) == {Action.RESTORE}
    response = token_client(helper).post(f"/v2/images/{image.pk}/actions/restore")
    assert response.status_code == 204
    image.refresh_from_db()
    assert image.status == Status.ACTIVE


def test_allowed_actions_scrub_needs_the_scrub_permission(cast):
    image = image_in(Status.PENDING_DELETE, owner="alice")
    assert Action.SCRUB in allowed_actions(cast["image administrator"], image)
    assert Action.SCRUB in allowed_actions(cast["superuser"], image)
    assert Action.SCRUB not in allowed_actions(cast["recovery staff"], image)
    assert Action.SCRUB not in allowed_actions(cast["owner"], image)
