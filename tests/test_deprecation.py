"""Scheduled deprecation (images/services/deprecation.py, images/api/deprecation.py):
setting and clearing a schedule, the list's warning and filters, 410 for obsolete
images, and the scrubber's pass recording each date passing once and deleting at
delete_at into the recycle bin. Time moves through the `now` the scrubber is handed
and dates set in the past, never by sleeping."""

import json
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from images import event_bus, policy, services
from images.enums import SCRUBBER, Operation, Status
from images.identity import KeystoneIdentity
from images.models import Image, ImageTransition
from tests.api import create, token_client, upload
from tests.test_events import Sent

pytestmark = pytest.mark.django_db

DATA = b"deprecated bytes"


def iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_image(user, *, data: bytes = DATA, **body) -> str:
    client = token_client(user)
    body = {"name": "old", "disk_format": "raw", "container_format": "bare", **body}
    response = create(client, **body)
    assert response.status_code == 201, response.content
    image_id = response.json()["id"]
    assert upload(client, image_id, data).status_code == 204
    return image_id


def deprecate(user, image_id, **schedule):
    return token_client(user).post(
        f"/v2/images/{image_id}/actions/deprecate",
        json.dumps(schedule),
        content_type="application/json",
    )


def steps(image_id) -> list[tuple[str, str, str, str]]:
    rows = ImageTransition.objects.filter(image_id=image_id).exclude(
        operation__in=[Operation.CREATE, Operation.UPLOAD]
    )
    return list(rows.values_list("source", "target", "operation", "actor"))


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def sent(settings):
    settings.IMAGES_NOTIFICATION_DRIVER = ["test"]
    settings.IMAGES_NOTIFICATION_TRANSPORT_URL = "fake://"
    event_bus._oslo_messaging()  # imported as test_events imports it (its warnings)
    return Sent()


# --- setting and clearing a schedule ----------------------------------------------------


def test_deprecate_sets_schedule_shown_in_the_image(alice, now):
    replacement = new_image(alice, name="new")
    image_id = new_image(alice)
    response = deprecate(
        alice,
        image_id,
        os_deprecated_at=iso(now + timedelta(days=1)),
        os_obsolete_at=iso(now + timedelta(days=2)),
        os_delete_at=iso(now + timedelta(days=3)),
        os_replacement_id=replacement,
    )
    assert response.status_code == 200, response.content
    shown = token_client(alice).get(f"/v2/images/{image_id}").json()
    assert {key: shown[key] for key in shown if "deprecat" in key or key.startswith("os_")} == {
        "deprecation_state": "active",
        "os_deprecated_at": iso(now + timedelta(days=1)),
        "os_obsolete_at": iso(now + timedelta(days=2)),
        "os_delete_at": iso(now + timedelta(days=3)),
        "os_replacement_id": replacement,
        "os_hidden": False,
        "os_hash_algo": "sha512",
        "os_hash_value": shown["os_hash_value"],
    }


def test_deprecate_empty_body_clears_the_schedule(alice, now):
    image_id = new_image(alice)
    assert deprecate(alice, image_id, os_deprecated_at=iso(now)).status_code == 200
    response = deprecate(alice, image_id)
    assert response.status_code == 200
    assert "deprecation_state" not in response.json()
    image = Image.objects.get(pk=image_id)
    assert (image.deprecated_at, image.obsolete_at, image.delete_at) == (None, None, None)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (
            {"os_deprecated_at": "2027-02-01T00:00:00Z", "os_obsolete_at": "2027-01-01T00:00:00Z"},
            "obsolete_at (2027-01-01T00:00:00+00:00) must not be before deprecated_at.",
        ),
        (
            {"os_obsolete_at": "2027-02-01T00:00:00Z", "os_delete_at": "2027-01-01T00:00:00Z"},
            "delete_at (2027-01-01T00:00:00+00:00) must not be before obsolete_at.",
        ),
        (
            {"os_obsolete_at": "next tuesday"},
            "Invalid time format for os_obsolete_at: next tuesday (ISO 8601 expected).",
        ),
        (
            {"os_obsolete_at": "2027-02-01T00:00:00"},
            "os_obsolete_at must say its time zone (e.g. 2027-01-31T00:00:00Z): "
            "2027-02-01T00:00:00",
        ),
        (
            {"deprecated_at": "2027-02-01T00:00:00Z"},
            "Unknown key 'deprecated_at' in a deprecation schedule; it takes os_deprecated_at, "
            "os_obsolete_at, os_delete_at, os_replacement_id.",
        ),
        ({"os_replacement_id": "nope"}, "Invalid os_replacement_id value: nope"),
        (
            {"os_replacement_id": "8c4a1b3e-06a4-4bb4-8c4e-9b2ef4d1a3c1"},
            "Replacement image 8c4a1b3e-06a4-4bb4-8c4e-9b2ef4d1a3c1 does not exist.",
        ),
    ],
)
def test_deprecate_refuses_a_bad_schedule_with_glance_error(alice, schedule, message):
    image_id = new_image(alice)
    response = deprecate(alice, image_id, **schedule)
    assert response.status_code == 400
    assert response.json() == {
        "message": message,
        "code": "400 Bad Request",
        "title": "Bad Request",
    }
    assert Image.objects.get(pk=image_id).obsolete_at is None


def test_deprecate_refuses_a_replacement_the_caller_cannot_see(alice, bob):
    hidden = new_image(bob, visibility="private")
    image_id = new_image(alice)
    response = deprecate(alice, image_id, os_replacement_id=hidden)
    assert response.status_code == 400
    assert response.json()["message"] == f"Replacement image {hidden} does not exist."


def test_deprecate_refuses_the_image_as_its_own_replacement(alice):
    image_id = new_image(alice)
    response = deprecate(alice, image_id, os_replacement_id=image_id)
    assert response.json()["message"] == "An image cannot be its own replacement."


def test_deprecate_is_refused_to_who_may_not_modify_the_image(alice, bob, now):
    image_id = new_image(alice, visibility="community")
    response = deprecate(bob, image_id, os_deprecated_at=iso(now))
    assert response.status_code == 403
    assert response.json()["message"] == f"You are not permitted to deprecate image {image_id}."


# --- the list: warning and filters ------------------------------------------------------


def test_list_shows_the_warning_and_filters_by_state(alice, now):
    replacement = new_image(alice, name="new")
    deprecated = new_image(alice, name="deprecated")
    obsolete = new_image(alice, name="obsolete")
    scheduled = new_image(alice, name="scheduled")
    deprecate(alice, deprecated, os_deprecated_at=iso(now), os_replacement_id=replacement)
    deprecate(alice, obsolete, os_obsolete_at=iso(now - timedelta(hours=1)))
    deprecate(alice, scheduled, os_deprecated_at=iso(now + timedelta(days=1)))
    client = token_client(alice)

    def names(query: str) -> list[str]:
        response = client.get(f"/v2/images?{query}")
        assert response.status_code == 200, response.content
        return sorted(image["name"] for image in response.json()["images"])

    listed = {image["name"]: image for image in client.get("/v2/images").json()["images"]}
    assert listed["deprecated"]["deprecation_state"] == "deprecated"
    assert listed["deprecated"]["os_deprecation_warning"] == (
        f"Image {deprecated} is deprecated; use {replacement} instead."
    )
    assert listed["obsolete"]["os_deprecation_warning"] == f"Image {obsolete} is obsolete."
    assert "os_deprecation_warning" not in listed["scheduled"]
    assert "deprecation_state" not in listed["new"]
    assert names("deprecation=deprecated") == ["deprecated"]
    assert names("deprecation=obsolete") == ["obsolete"]
    assert names("deprecation=in:deprecated,obsolete") == ["deprecated", "obsolete"]
    assert names("deprecation=scheduled") == ["scheduled"]
    assert names("deprecation=active") == ["new", "scheduled"]
    assert names(f"os_deprecated_at=gt:{iso(now)}") == ["scheduled"]
    assert names(f"os_obsolete_at=lt:{iso(now)}") == ["obsolete"]


def test_list_refuses_an_unknown_deprecation_state(alice):
    response = token_client(alice).get("/v2/images?deprecation=retired")
    assert response.status_code == 400
    assert response.json()["message"] == (
        "Invalid deprecation value: retired. "
        "It must be one of: obsolete, deprecated, active, scheduled."
    )


# --- downloads: 410 once obsolete -------------------------------------------------------


def test_download_of_deprecated_image_still_works(alice, now):
    image_id = new_image(alice)
    deprecate(alice, image_id, os_deprecated_at=iso(now))
    response = token_client(alice).get(f"/v2/images/{image_id}/file")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == DATA


def test_download_of_obsolete_image_answers_410_naming_the_replacement(alice, now):
    replacement = new_image(alice, name="new")
    image_id = new_image(alice)
    deprecate(alice, image_id, os_obsolete_at=iso(now), os_replacement_id=replacement)
    response = token_client(alice).get(f"/v2/images/{image_id}/file")
    assert response.status_code == 410
    assert response.json() == {
        "message": f"Image {image_id} is obsolete; its replacement is image {replacement}.",
        "code": "410 Gone",
        "title": "Gone",
    }


def test_download_of_obsolete_image_works_for_admins(alice, admin_user, now):
    image_id = new_image(alice)
    deprecate(alice, image_id, os_obsolete_at=iso(now))
    response = token_client(admin_user).get(f"/v2/images/{image_id}/file")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == DATA


def test_download_before_obsolete_at_works(alice, now):
    image_id = new_image(alice)
    deprecate(alice, image_id, os_obsolete_at=iso(now + timedelta(minutes=5)))
    response = token_client(alice).get(f"/v2/images/{image_id}/file")
    assert b"".join(response.streaming_content) == DATA


# --- the scrubber's pass ----------------------------------------------------------------


def test_scrubber_records_each_step_once_with_its_event(
    alice, now, sent, django_capture_on_commit_callbacks
):
    image_id = new_image(alice)
    deprecate(
        alice,
        image_id,
        os_deprecated_at=iso(now + timedelta(days=1)),
        os_obsolete_at=iso(now + timedelta(days=2)),
    )
    sent.reset()
    for day in (0, 1, 1, 2, 3):
        with django_capture_on_commit_callbacks(execute=True):
            services.scrubber_pass(now=now + timedelta(days=day, minutes=1))
    assert steps(image_id) == [
        (Status.ACTIVE, Status.ACTIVE, Operation.DEPRECATE, SCRUBBER),
        (Status.ACTIVE, Status.ACTIVE, Operation.OBSOLETE, SCRUBBER),
    ]
    assert [(kind, payload["id"], payload["deprecation_state"]) for kind, _, payload in sent()] == [
        ("image.deprecate", image_id, "deprecated"),
        ("image.obsolete", image_id, "obsolete"),
    ]


def test_scrubber_records_both_steps_when_both_dates_passed_at_once(alice, now):
    image_id = new_image(alice)
    deprecate(alice, image_id, os_deprecated_at=iso(now), os_obsolete_at=iso(now))
    report = services.images_deprecation_due(now=now + timedelta(minutes=1))
    assert report.recorded == [
        (uuid.UUID(image_id), "deprecated"),
        (uuid.UUID(image_id), "obsolete"),
    ]
    assert services.images_deprecation_due(now=now + timedelta(days=1)).recorded == []


def test_deprecate_moving_a_passed_date_does_not_record_it_again(alice, now):
    image_id = new_image(alice)
    deprecate(alice, image_id, os_deprecated_at=iso(now))
    services.images_deprecation_due(now=now + timedelta(minutes=1))
    deprecate(alice, image_id, os_deprecated_at=iso(now - timedelta(hours=1)))
    assert services.images_deprecation_due(now=now + timedelta(minutes=2)).recorded == []
    # Moved into the future it is undone, and recorded again when it passes anew.
    deprecate(alice, image_id, os_deprecated_at=iso(now + timedelta(days=1)))
    later = services.images_deprecation_due(now=now + timedelta(days=1, minutes=1))
    assert later.recorded == [(uuid.UUID(image_id), "deprecated")]
    assert [row[2] for row in steps(image_id)] == [Operation.DEPRECATE, Operation.DEPRECATE]


def test_scrubber_deletes_at_delete_at_into_the_recycle_bin(alice, recovery_staff, now):
    image_id = new_image(alice)
    deprecate(alice, image_id, os_delete_at=iso(now + timedelta(days=3)))
    assert services.scrubber_pass(now=now + timedelta(days=2)).deprecation.deleted == []
    report = services.scrubber_pass(now=now + timedelta(days=3, minutes=1))
    assert report.deprecation.deleted == [uuid.UUID(image_id)]
    image = Image.objects.get(pk=image_id)
    assert image.status == Status.PENDING_DELETE
    assert image.delete_at is None
    last = ImageTransition.objects.filter(image=image).last()
    assert (last.source, last.target, last.operation, last.actor, last.reason) == (
        Status.ACTIVE,
        Status.PENDING_DELETE,
        Operation.DELETE,
        SCRUBBER,
        f"scheduled: delete_at {iso(now + timedelta(days=3))} passed",
    )
    assert [row[2] for row in steps(image_id)] == [Operation.OBSOLETE, Operation.DELETE]
    # Restorable, with its data, and not deleted again by the next pass.
    services.image_restore(image=image, actor=recovery_staff)
    services.scrubber_pass(now=now + timedelta(days=3, minutes=2))
    image.refresh_from_db()
    assert image.status == Status.ACTIVE
    response = token_client(alice).get(f"/v2/images/{image_id}/file")
    assert b"".join(response.streaming_content) == DATA


def test_scrubber_scheduled_delete_of_protected_image_is_reported_not_done(alice, now):
    image_id = new_image(alice, protected=True)
    deprecate(alice, image_id, os_delete_at=iso(now))
    report = services.images_deprecation_due(now=now + timedelta(minutes=1))
    assert report.deleted == []
    assert report.failed == [
        (uuid.UUID(image_id), f"Image {image_id} is protected and cannot be deleted.")
    ]
    assert Image.objects.get(pk=image_id).status == Status.ACTIVE


# --- the admin --------------------------------------------------------------------------


def admin_url(image_id, view: str = "change") -> str:
    return reverse(f"admin:images_image_{view}", args=[image_id])


def change_form(**extra) -> dict:
    return {
        "name": "old",
        "owner": "alice",
        "visibility": "shared",
        "min_disk": "0",
        "min_ram": "0",
        "tag_list": "",
        "extra_properties": "",
        "_save": "Save",
        **extra,
    }


def test_admin_form_sets_the_schedule(client, admin_user, alice):
    image_id = new_image(alice)
    replacement = new_image(alice, name="new")
    client.force_login(admin_user)
    response = client.post(
        admin_url(image_id),
        change_form(
            deprecated_at_0="2027-01-01",
            deprecated_at_1="00:00:00",
            obsolete_at_0="2027-02-01",
            obsolete_at_1="00:00:00",
            replacement_id=replacement,
        ),
    )
    assert response.status_code == 302
    image = Image.objects.get(pk=image_id)
    assert (iso(image.deprecated_at), iso(image.obsolete_at), str(image.replacement_id)) == (
        "2027-01-01T00:00:00Z",
        "2027-02-01T00:00:00Z",
        replacement,
    )
    page = client.get(admin_url(image_id)).content.decode()
    assert "Deprecation schedule" in page


def test_admin_form_refuses_dates_out_of_order_with_a_message(client, admin_user, alice):
    image_id = new_image(alice)
    client.force_login(admin_user)
    response = client.post(
        admin_url(image_id),
        change_form(
            name="renamed",
            deprecated_at_0="2027-02-01",
            deprecated_at_1="00:00:00",
            obsolete_at_0="2027-01-01",
            obsolete_at_1="00:00:00",
        ),
        follow=True,
    )
    messages = [str(message) for message in response.context["messages"]]
    assert messages == [
        f"“{image_id}” was not saved: obsolete_at (2027-01-01T00:00:00+00:00) "
        "must not be before deprecated_at."
    ]
    image = Image.objects.get(pk=image_id)
    assert (image.name, image.deprecated_at) == ("old", None)  # nothing half-saved


def test_admin_index_lists_the_upcoming_steps(client, django_user_model, alice, now):
    soon, later = new_image(alice, name="soon"), new_image(alice, name="later")
    deprecate(alice, soon, os_deprecated_at=iso(now + timedelta(days=1)))
    deprecate(alice, later, os_delete_at=iso(now + timedelta(days=9)))
    viewer = django_user_model.objects.create_user("val", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_image"))
    client.force_login(viewer)
    events = client.get("/admin/").context["events"]
    assert [(e.step, e.image.name, e.when) for e in events] == [
        ("deprecated", "soon", now + timedelta(days=1)),
        ("deleted", "later", now + timedelta(days=9)),
    ]


def test_scrub_images_reports_the_deprecation_pass(alice, now):
    image_id = new_image(alice)
    deprecate(alice, image_id, os_deprecated_at=iso(now), os_delete_at=iso(now))
    out = StringIO()
    call_command("scrub_images", stdout=out, stderr=StringIO())
    assert out.getvalue().strip().endswith("deprecation steps recorded 2, deleted by schedule 1")
    assert Image.objects.get(pk=image_id).status == Status.PENDING_DELETE


def test_admin_index_panel_shows_an_overdue_delete(client, admin_user, alice, now):
    image_id = new_image(alice, name="kept", protected=True)
    deprecate(alice, image_id, os_delete_at=iso(now))
    services.images_deprecation_due(now=now + timedelta(minutes=1))
    client.force_login(admin_user)
    page = client.get("/admin/").content.decode()
    panel = page[page.index('id="deprecation-upcoming"') :]
    panel = panel[: panel.index("</table>")]
    assert "Scheduled deprecations: what happens next" in panel
    assert f'href="{admin_url(image_id)}">kept</a>' in panel
    assert "(overdue: the delete was refused)" in panel


# --- policy in Keystone mode: Glance's rule defaults ---------------------------------


def keystone_caller(project: str, *roles: str) -> KeystoneIdentity:
    return KeystoneIdentity(
        user_id=f"user-of-{project}",
        user_name=f"user-of-{project}",
        project_id=project,
        project_name=project,
        roles=frozenset(roles),
    )


@pytest.mark.parametrize(
    ("caller", "may_deprecate", "may_use_obsolete"),
    [
        (keystone_caller("p1", "member", "reader"), True, False),
        (keystone_caller("p1", "reader"), False, False),
        (keystone_caller("p2", "member", "reader"), False, False),
        (keystone_caller("p2", "admin", "member", "reader"), True, True),
    ],
)
def test_policy_deprecate_image_rule_defaults(caller, may_deprecate, may_use_obsolete):
    image = Image(owner="p1", visibility="public")
    assert policy.can_deprecate(caller, image) is may_deprecate
    assert policy.can_use_obsolete(caller) is may_use_obsolete


def test_admin_list_filters_by_deprecation_state(client, admin_user, alice, now):
    obsolete, scheduled = new_image(alice, name="obsolete"), new_image(alice, name="scheduled")
    new_image(alice, name="plain")
    deprecate(alice, obsolete, os_obsolete_at=iso(now))
    deprecate(alice, scheduled, os_delete_at=iso(now + timedelta(days=1)))
    client.force_login(admin_user)
    for state, expected in (("obsolete", ["obsolete"]), ("scheduled", ["scheduled"])):
        response = client.get(f"/admin/images/image/?deprecation={state}")
        assert [image.name for image in response.context["cl"].result_list] == expected
