"""The admin, through Django's test client: every page, action and permission
boundary. Each change must arrive through images.services (status, history row)."""

import hashlib
import importlib
import io
from html import unescape

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import strip_tags
from django_fsm import can_proceed

from images import services, storage
from images.admin.lifecycle import lifecycle_picture
from images.admin.lists import CappedCountPaginator
from images.admin.transitions import ADMIN_TRANSITIONS, available_transitions
from images.enums import Operation, Status
from images.errors import ImageError
from images.models import Image, ImageTransition
from tests.factories import image_in

pytestmark = pytest.mark.django_db

S = Status
LIST = "/admin/images/image/"
BIN = "/admin/images/pendingdeleteimage/"


ROLES = importlib.import_module("images.migrations.0003_admin_roles")


@pytest.fixture(autouse=True)
def roles():
    """The groups of the data migration. A transactional test elsewhere in the run
    flushes the database (and with it the migration's rows), so put them back."""
    if (
        Group.objects.filter(name__in=[ROLES.IMAGE_ADMINISTRATORS, ROLES.RECOVERY_STAFF]).count()
        < 2
    ):
        ROLES.create_roles(django_apps, None)


# --- the cast -----------------------------------------------------------------------


def _member_of(django_user_model, username: str, group: str):
    user = django_user_model.objects.create_user(username=username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def image_admin_user(django_user_model, admin_roles):
    """Staff in the "Image administrators" group the migration creates (not a superuser)."""
    return _member_of(django_user_model, "ingrid", "Image administrators")


@pytest.fixture
def rescuer(django_user_model, admin_roles):
    """Staff in the "Recovery staff" group the migration creates."""
    return _member_of(django_user_model, "ross", "Recovery staff")


def client_for(client, user):
    client.force_login(user)
    return client


def stored(actor, data: bytes = b"image bytes", **fields) -> Image:
    """An image with real data in the store, made the way the API makes one."""
    fields.setdefault("disk_format", "raw")
    fields.setdefault("container_format", "bare")
    image = services.image_create(actor=actor, **fields)
    return services.image_upload(
        image=image, actor=actor, stream=io.BytesIO(data), declared_size=len(data)
    )


def text(response) -> str:
    return unescape(response.content.decode())


def plain(response) -> str:
    """The page as a reader sees it: no tags, single spaces."""
    return " ".join(unescape(strip_tags(response.content.decode())).replace("\xa0", " ").split())


def history(image) -> list[tuple[str, str, str, str]]:
    return list(
        ImageTransition.objects.filter(image=image).values_list(
            "source", "target", "operation", "actor"
        )
    )


def url(image, view: str, *args) -> str:
    return reverse(f"admin:images_image_{view}", args=[image.pk, *args])


# --- roles --------------------------------------------------------------------------


def test_roles_migration_creates_the_two_groups():
    administrators = Group.objects.get(name="Image administrators")
    recovery = Group.objects.get(name="Recovery staff")
    every_image_permission = set(
        Permission.objects.filter(content_type__app_label="images").values_list(
            "codename", flat=True
        )
    )
    assert {"restore_image", "deactivate_image", "scrub_image", "delete_image"} <= (
        every_image_permission
    )
    assert set(administrators.permissions.values_list("codename", flat=True)) == (
        every_image_permission
    )
    assert set(recovery.permissions.values_list("codename", flat=True)) == {
        "view_image",
        "restore_image",
    }


# --- pages --------------------------------------------------------------------------


def test_pages_render_for_an_image_administrator(client, image_admin_user, alice):
    image = stored(alice, name="web")
    gone = stored(alice, name="old")
    services.image_delete(image=gone, actor=alice)
    client_for(client, image_admin_user)
    for page in [
        "/admin/",
        LIST,
        url(image, "change"),
        url(image, "delete"),
        "/admin/images/image/add/",
        BIN,
        "/admin/images/imagetransition/",
        url(gone, "change"),
    ]:
        assert client.get(page).status_code == 200, page


def test_index_shows_counts_bytes_and_next_scrub(client, admin_user, alice, settings):
    settings.IMAGES_SCRUB_DELAY_SECONDS = 3600
    stored(alice, b"x" * 2048, name="a")
    stored(alice, b"y" * 1024, name="b")
    image_in(S.QUEUED)
    services.image_delete(image=stored(alice, b"z" * 1024, name="c"), actor=alice)
    page = text(client_for(client, admin_user).get("/admin/"))
    summary = page[page.index('id="image-summary"') : page.index("</table>")]
    assert '>active</span></a></th><td class="num">2<' in summary
    assert '>queued</span></a></th><td class="num">1<' in summary
    assert '>pending_delete</span></a></th><td class="num">1<' in summary
    assert "4.0\xa0KB" in summary  # data held: active + pending_delete
    assert 'awaiting scrub</th><td class="num">1<' in summary
    assert "(in 59\xa0minutes)" in summary or "(in 1\xa0hour)" in summary


def test_index_hides_the_summary_from_staff_without_image_permissions(client, django_user_model):
    user = django_user_model.objects.create_user("stan", password="pw", is_staff=True)
    assert 'id="image-summary"' not in text(client_for(client, user).get("/admin/"))


def test_list_shows_badge_size_formats_and_time_left(client, admin_user, alice, settings):
    settings.IMAGES_SCRUB_DELAY_SECONDS = 7200
    stored(alice, b"x" * 3000, name="kept")
    services.image_delete(image=stored(alice, name="binned"), actor=alice)
    page = text(client_for(client, admin_user).get(LIST))
    assert '<span class="image-status image-status-active">active</span>' in page
    assert "2.9\xa0KB" in page
    assert "raw / bare" in page
    assert "in 1\xa0hour, 59\xa0minutes" in page or "in 2\xa0hours" in page


@pytest.mark.parametrize("page", [LIST, BIN, "/admin/images/imagetransition/"])
def test_list_queries_do_not_grow_with_rows(client, admin_user, page):
    client_for(client, admin_user)

    def queries_with(rows: int) -> int:
        for _ in range(rows):
            image_in(S.PENDING_DELETE)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(page).status_code == 200
        return len(captured)

    few = queries_with(2)
    assert queries_with(30) == few


def test_list_counts_at_most_the_cap(client, admin_user, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 5)
    for _ in range(8):
        image_in(S.QUEUED)
    client_for(client, admin_user)
    with CaptureQueriesContext(connection) as captured:
        page = text(client.get(LIST))
    assert "More than 5 images" in page
    counts = [q["sql"] for q in captured if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT 6" in sql for sql in counts)


def test_list_filters_by_status_and_owner_and_searches(client, admin_user, alice, bob):
    web = stored(alice, name="web-server")
    db = stored(bob, b"other bytes", name="database")
    queued = services.image_create(actor=bob, name="web-queued")
    client_for(client, admin_user)

    def names(query: str) -> set[str]:
        response = client.get(LIST + query)
        return {image.name for image in response.context["cl"].result_list}

    assert names("?status__exact=active") == {"web-server", "database"}
    assert names("?status__exact=queued") == {"web-queued"}
    assert names("?owner=bob") == {"database", "web-queued"}
    assert names("?q=web") == {"web-server", "web-queued"}
    assert names(f"?q={db.pk}") == {"database"}
    assert names(f"?q={web.checksum}") == {"web-server"}
    assert names("?q=web&status__exact=queued") == {queued.name}


# --- the image page ---------------------------------------------------------------


def test_image_page_shows_lifecycle_history_and_the_users_buttons(client, admin_user, alice):
    image = stored(alice, name="web")
    page = text(client_for(client, admin_user).get(url(image, "change")))
    assert url(image, "transition", "deactivate") in page
    assert url(image, "transition", "restore") not in page
    assert url(image, "download") in page
    assert url(image, "delete") in page
    assert '<g class="node current" data-status="active">' in page
    assert 'id="image-history"' in page and "upload started" in page


def test_lifecycle_picture_draws_every_transition_of_the_model():
    picture = lifecycle_picture(S.DEACTIVATED)
    drawn = {(edge["source"], edge["target"]) for edge in picture["edges"]}
    declared = set()
    for transition in Image._meta.get_field("status").get_all_transitions(Image):
        if transition.name == "migrate":  # import_glance's start, not a lifecycle step
            continue
        targets = getattr(transition.target, "allowed_states", [transition.target])
        declared |= {(transition.source, t) for t in targets if t != transition.source}
    assert drawn == declared
    assert [n["status"] for n in picture["nodes"] if n["current"]] == [S.DEACTIVATED]
    assert {edge["target"] for edge in picture["ways_out"]} == {
        S.ACTIVE,
        S.PENDING_DELETE,
        S.DELETED,
    }


def test_recovery_staff_see_an_image_read_only_without_buttons(client, rescuer, alice):
    image = stored(alice, name="web")
    page = text(client_for(client, rescuer).get(url(image, "change")))
    assert "/transition/" not in page
    assert url(image, "delete") not in page
    assert 'name="_save"' not in page
    assert 'name="name"' not in page


def test_recovery_staff_see_restore_on_a_pending_delete_image(client, rescuer, alice):
    image = services.image_delete(image=stored(alice, name="web"), actor=alice)
    page = text(client_for(client, rescuer).get(url(image, "change")))
    assert url(image, "transition", "restore") in page
    assert url(image, "scrub") not in page


def test_change_form_saves_metadata_through_image_update(client, admin_user, alice):
    image = stored(alice, name="web", tags=["old"], properties={"os": "linux", "drop": "me"})
    response = client_for(client, admin_user).post(
        url(image, "change"),
        {
            "name": "web-2",
            "owner": "alice",
            "visibility": "private",
            "protected": "on",
            "min_disk": "5",
            "min_ram": "512",
            "tag_list": "a, b",
            "extra_properties": "os=bsd\nnew=1",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    image.refresh_from_db()
    assert (image.name, image.visibility, image.protected, image.min_disk, image.min_ram) == (
        "web-2",
        "private",
        True,
        5,
        512,
    )
    assert sorted(image.tags.values_list("value", flat=True)) == ["a", "b"]
    assert dict(image.properties.values_list("name", "value")) == {"os": "bsd", "new": "1"}
    assert image.status == S.ACTIVE
    assert history(image)[-1][2] == Operation.UPLOAD  # metadata edits are no status change


def test_add_form_creates_through_image_create(client, admin_user):
    response = client_for(client, admin_user).post(
        "/admin/images/image/add/",
        {
            "name": "fresh",
            "owner": "",
            "visibility": "shared",
            "disk_format": "qcow2",
            "container_format": "bare",
            "min_disk": "0",
            "min_ram": "0",
            "tag_list": "x",
            "extra_properties": "",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    image = Image.objects.get(name="fresh")
    assert (image.status, image.owner) == (S.QUEUED, "admin")
    assert history(image) == [("", S.QUEUED, Operation.CREATE, "admin")]


def test_add_form_refusal_becomes_a_message_and_writes_nothing(client, django_user_model):
    user = django_user_model.objects.create_user("adam", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_image", "view_image"]))
    response = client_for(client, user).post(
        "/admin/images/image/add/",
        {
            "name": "loud",
            "visibility": "public",
            "min_disk": "0",
            "min_ram": "0",
            "_save": "Save",
        },
        follow=True,
    )
    assert "was not saved: You are not authorized to create public images." in text(response)
    assert not Image.objects.exists()


def test_recovery_staff_cannot_edit(client, rescuer, alice):
    image = stored(alice, name="web")
    response = client_for(client, rescuer).post(
        url(image, "change"), {"name": "hacked", "visibility": "shared", "_save": "Save"}
    )
    assert response.status_code == 403
    image.refresh_from_db()
    assert image.name == "web"


# --- transition buttons --------------------------------------------------------------


def test_transition_button_deactivates_through_the_service(client, image_admin_user, alice):
    image = stored(alice, name="web")
    response = client_for(client, image_admin_user).post(
        url(image, "transition", "deactivate"), follow=True
    )
    image.refresh_from_db()
    assert image.status == S.DEACTIVATED
    assert history(image)[-1] == (S.ACTIVE, S.DEACTIVATED, Operation.DEACTIVATE, "ingrid")
    assert "“web” was deactivated; it is now deactivated." in text(response)


def test_transition_crafted_post_without_permission_changes_nothing(client, rescuer, alice):
    image = stored(alice, name="web")
    before = history(image)
    response = client_for(client, rescuer).post(url(image, "transition", "deactivate"))
    assert response.status_code == 403
    image.refresh_from_db()
    assert image.status == S.ACTIVE
    assert history(image) == before


def test_transition_crafted_post_in_the_wrong_status_changes_nothing(client, admin_user, alice):
    image = stored(alice, name="web")
    before = history(image)
    response = client_for(client, admin_user).post(url(image, "transition", "restore"), follow=True)
    assert "“web” was not restored: restore is not possible while it is active." in text(response)
    image.refresh_from_db()
    assert image.status == S.ACTIVE
    assert history(image) == before


def test_transition_url_refuses_get_and_unknown_names(client, admin_user, alice):
    image = stored(alice, name="web")
    client_for(client, admin_user)
    assert client.get(url(image, "transition", "deactivate")).status_code == 405
    assert client.post(url(image, "transition", "finish_upload")).status_code == 404
    assert client.post(url(image, "transition", "scrub")).status_code == 404
    image.refresh_from_db()
    assert image.status == S.ACTIVE


def test_transition_redirects_only_to_local_next(client, admin_user, alice):
    image = stored(alice, name="web")
    response = client_for(client, admin_user).post(
        url(image, "transition", "deactivate"), {"next": "https://evil.example/"}
    )
    assert response["Location"] == url(image, "change")


# --- delete ----------------------------------------------------------------------------


def test_delete_confirmation_says_what_happens_to_each_image(client, admin_user, alice, settings):
    settings.IMAGES_SCRUB_DELAY_SECONDS = 86400
    active = stored(alice, name="with-data")
    queued = services.image_create(actor=alice, name="no-data")
    locked = stored(alice, name="locked", protected=True)
    response = client_for(client, admin_user).post(
        LIST,
        {"action": "delete_selected", "_selected_action": [active.pk, queued.pk, locked.pk]},
    )
    page = plain(response)
    assert "with-data active: moves to the recycle bin as pending_delete" in page
    assert "can be restored until then" in page
    assert "(in 23 hours, 59 minutes)" in page or "(in 1 day)" in page
    assert "no-data queued: removed for good" in page
    assert f"locked active: refused. Image {locked.pk} is protected and cannot be deleted." in (
        page
    )
    assert 'value="Yes, delete"' in text(response)
    for image in (active, queued, locked):
        image.refresh_from_db()
    assert (active.status, queued.status, locked.status) == (S.ACTIVE, S.QUEUED, S.ACTIVE)


def test_bulk_delete_goes_through_image_delete_and_reports_each(client, admin_user, alice):
    active = stored(alice, name="with-data")
    queued = services.image_create(actor=alice, name="no-data")
    locked = stored(alice, name="locked", protected=True)
    response = client_for(client, admin_user).post(
        LIST,
        {
            "action": "delete_selected",
            "_selected_action": [active.pk, queued.pk, locked.pk],
            "post": "yes",
        },
        follow=True,
    )
    page = text(response)
    for image in (active, queued, locked):
        image.refresh_from_db()
    assert (active.status, queued.status, locked.status) == (
        S.PENDING_DELETE,
        S.DELETED,
        S.ACTIVE,
    )
    assert "“with-data” is in the recycle bin until" in page
    assert "“no-data” was deleted for good; its data is removed." in page
    assert f"“locked” was not deleted: Image {locked.pk} is protected" in page
    assert history(active)[-1] == (S.ACTIVE, S.PENDING_DELETE, Operation.DELETE, "admin")
    assert storage.store().exists(str(active.pk))  # kept for a restore


def test_single_delete_moves_an_image_to_the_recycle_bin(client, image_admin_user, alice):
    image = stored(alice, name="web")
    response = client_for(client, image_admin_user).post(url(image, "delete"), follow=True)
    image.refresh_from_db()
    assert image.status == S.PENDING_DELETE
    assert response.redirect_chain[-1][0] == LIST
    assert "“web” is in the recycle bin until" in text(response)


def test_single_delete_of_a_protected_image_is_refused(client, admin_user, alice):
    image = stored(alice, name="locked", protected=True)
    client_for(client, admin_user)
    confirmation = text(client.get(url(image, "delete")))
    assert f"refused. Image {image.pk} is protected and cannot be deleted." in confirmation
    assert 'value="Yes, delete"' not in confirmation
    response = client.post(url(image, "delete"), follow=True)
    assert f"“locked” was not deleted: Image {image.pk} is protected" in text(response)
    image.refresh_from_db()
    assert image.status == S.ACTIVE


def test_recovery_staff_cannot_delete(client, rescuer, alice):
    image = stored(alice, name="web")
    client_for(client, rescuer)
    assert client.get(url(image, "delete")).status_code == 403
    assert client.post(url(image, "delete")).status_code == 403
    response = client.post(
        LIST, {"action": "delete_selected", "_selected_action": [image.pk], "post": "yes"}
    )
    assert response.status_code in (200, 302)
    image.refresh_from_db()
    assert image.status == S.ACTIVE
    actions = client.get(LIST).context["action_form"].fields["action"].choices
    assert [name for name, _ in actions] == ["", "restore_selected"]


@pytest.mark.parametrize("status", S.values)
@pytest.mark.parametrize("protected", [False, True])
def test_delete_preview_foretells_image_delete(status, protected, alice):
    image = image_in(status, owner="alice", protected=protected)
    preview = services.image_delete_preview(image=image, actor=alice)
    try:
        outcome = services.image_delete(image=image, actor=alice).status
    except ImageError:
        outcome = "refused"
    assert preview.outcome == outcome
    assert (preview.scrub_at is not None) == (outcome == S.PENDING_DELETE)


# --- bulk transitions -----------------------------------------------------------------


def test_bulk_deactivate_reports_done_already_and_skipped(client, admin_user, alice):
    active = stored(alice, name="on")
    off = services.image_deactivate(image=stored(alice, name="off"), actor=alice)
    queued = services.image_create(actor=alice, name="empty")
    response = client_for(client, admin_user).post(
        LIST,
        {"action": "deactivate_selected", "_selected_action": [active.pk, off.pk, queued.pk]},
        follow=True,
    )
    page = text(response)
    assert "Deactivated 1 image: “on”." in page
    assert "“off” was already deactivated: nothing to do." in page
    assert "“empty” was not deactivated: Not allowed to deactivate image in status 'queued'" in (
        page
    )
    active.refresh_from_db()
    queued.refresh_from_db()
    assert (active.status, queued.status) == (S.DEACTIVATED, S.QUEUED)


def test_bulk_reactivate_and_restore_from_the_image_list(client, admin_user, alice):
    off = services.image_deactivate(image=stored(alice, name="off"), actor=alice)
    binned = services.image_delete(image=stored(alice, name="binned"), actor=alice)
    client_for(client, admin_user)
    client.post(LIST, {"action": "reactivate_selected", "_selected_action": [off.pk]})
    response = client.post(
        LIST, {"action": "restore_selected", "_selected_action": [binned.pk, off.pk]}, follow=True
    )
    off.refresh_from_db()
    binned.refresh_from_db()
    assert (off.status, binned.status) == (S.ACTIVE, S.ACTIVE)
    assert "“binned” was restored; it is now active." in text(response)  # as in the recycle bin
    assert "“off” was not restored: " in text(response)


# --- the recycle bin ---------------------------------------------------------------------


def test_recycle_bin_lists_pending_delete_soonest_scrub_first(client, rescuer, alice, settings):
    settings.IMAGES_SCRUB_DELAY_SECONDS = 3 * 3600
    first = services.image_delete(image=stored(alice, name="first"), actor=alice)
    second = services.image_delete(image=stored(alice, name="second"), actor=alice)
    stored(alice, name="alive")
    response = client_for(client, rescuer).get(BIN)
    assert [image.pk for image in response.context["cl"].result_list] == [first.pk, second.pk]
    assert "<h1>Recycle bin</h1>" in text(response)
    assert "Restore</button>" in text(response)
    page = plain(response)
    assert "2 hours, 59 minutes" in page or "3 hours" in page
    assert [name for name, _ in response.context["action_form"].fields["action"].choices] == [
        "",
        "restore_selected",
    ]


def test_recycle_bin_restore_action_brings_images_back(client, rescuer, alice):
    binned = services.image_delete(image=stored(alice, b"precious", name="binned"), actor=alice)
    response = client_for(client, rescuer).post(
        BIN, {"action": "restore_selected", "_selected_action": [binned.pk]}, follow=True
    )
    binned.refresh_from_db()
    assert binned.status == S.ACTIVE
    assert history(binned)[-1] == (S.PENDING_DELETE, S.ACTIVE, Operation.RESTORE, "ross")
    assert "“binned” was restored; it is now active." in text(response)


def test_recycle_bin_row_button_restores_and_returns_to_the_bin(client, recovery_staff, alice):
    binned = services.image_delete(
        image=services.image_deactivate(image=stored(alice, name="was-off"), actor=alice),
        actor=alice,
    )
    response = client_for(client, recovery_staff).post(
        url(binned, "transition", "restore"), {"next": BIN}
    )
    assert response["Location"] == BIN
    binned.refresh_from_db()
    assert binned.status == S.DEACTIVATED


def test_recycle_bin_is_hidden_from_staff_without_image_permissions(client, django_user_model):
    user = django_user_model.objects.create_user("stan", password="pw", is_staff=True)
    assert client_for(client, user).get(BIN).status_code == 403


def test_scrub_now_needs_the_scrub_permission(client, rescuer, alice):
    binned = services.image_delete(image=stored(alice, name="binned"), actor=alice)
    client_for(client, rescuer)
    assert client.get(url(binned, "scrub")).status_code == 403
    assert client.post(url(binned, "scrub")).status_code == 403
    client.post(BIN, {"action": "scrub_selected", "_selected_action": [binned.pk], "post": "yes"})
    binned.refresh_from_db()
    assert binned.status == S.PENDING_DELETE


def test_scrub_now_by_an_image_administrator(client, image_admin_user, alice):
    """Image administrators hold images.scrub_image; no superuser is needed."""
    binned = services.image_delete(image=stored(alice, name="binned"), actor=alice)
    client_for(client, image_admin_user)
    client.post(url(binned, "scrub"))
    binned.refresh_from_db()
    assert binned.status == S.DELETED


def test_scrub_now_asks_first_then_removes_the_data(client, admin_user, alice):
    binned = services.image_delete(image=stored(alice, name="binned"), actor=alice)
    client_for(client, admin_user)
    confirmation = text(client.get(url(binned, "scrub")))
    assert "They can no longer be restored." in confirmation
    binned.refresh_from_db()
    assert binned.status == S.PENDING_DELETE
    response = client.post(url(binned, "scrub"), follow=True)
    binned.refresh_from_db()
    assert binned.status == S.DELETED
    assert not storage.store().exists(str(binned.pk))
    assert "“binned” was scrubbed: its data is removed for good." in text(response)


def test_scrub_action_confirms_before_scrubbing(client, admin_user, alice):
    binned = services.image_delete(image=stored(alice, name="binned"), actor=alice)
    client_for(client, admin_user)
    ask = client.post(BIN, {"action": "scrub_selected", "_selected_action": [binned.pk]})
    assert "Yes, scrub now" in text(ask)
    binned.refresh_from_db()
    assert binned.status == S.PENDING_DELETE
    client.post(BIN, {"action": "scrub_selected", "_selected_action": [binned.pk], "post": "yes"})
    binned.refresh_from_db()
    assert binned.status == S.DELETED


# --- download and upload -------------------------------------------------------------


def test_download_returns_the_images_bytes(client, rescuer, alice, payload):
    image = stored(alice, payload, name="web")
    response = client_for(client, rescuer).get(url(image, "download"))
    body = b"".join(response.streaming_content)
    response.close()
    assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()


def test_download_of_a_deactivated_image_needs_the_deactivate_permission(client, rescuer, alice):
    image = services.image_deactivate(image=stored(alice, name="off"), actor=alice)
    response = client_for(client, rescuer).get(url(image, "download"), follow=True)
    assert "“off” was not downloaded: The requested image has been deactivated." in text(response)


def test_upload_form_streams_a_file_into_a_queued_image(client, admin_user, alice, payload):
    image = services.image_create(
        actor=alice, name="empty", disk_format="raw", container_format="bare"
    )
    client_for(client, admin_user)
    assert f'action="{url(image, "upload")}"' in text(client.get(url(image, "change")))
    upload = io.BytesIO(payload)
    upload.name = "disk.raw"
    response = client.post(url(image, "upload"), {"data": upload}, follow=True)
    image.refresh_from_db()
    assert image.status == S.ACTIVE
    assert image.checksum == hashlib.md5(payload).hexdigest()
    assert image.size == len(payload)
    assert "it is now active" in text(response)


def test_failed_upload_reason_is_shown_on_the_image_page(client, admin_user, alice, failing_store):
    image = services.image_create(
        actor=alice, name="empty", disk_format="raw", container_format="bare"
    )
    failing_store()
    client_for(client, admin_user)
    upload = io.BytesIO(b"some bytes")
    upload.name = "disk.raw"
    response = client.post(url(image, "upload"), {"data": upload}, follow=True)
    page = text(response)
    image.refresh_from_db()
    assert image.status == S.QUEUED
    failed = ImageTransition.objects.get(image=image, operation=Operation.UPLOAD_FAILED)
    assert "“empty” was not uploaded: The image store failed" in page
    assert failed.reason in page
    assert 'class="history-upload_failed"' in page


def test_upload_form_refuses_data_that_is_not_its_format(client, admin_user, alice, payload):
    image = services.image_create(
        actor=alice, name="claims-qcow2", disk_format="qcow2", container_format="bare"
    )
    client_for(client, admin_user)
    upload = io.BytesIO(payload)
    upload.name = "disk.qcow2"
    page = text(client.post(url(image, "upload"), {"data": upload}, follow=True))
    assert "Image disk_format qcow2 does not match stream data raw" in page
    image.refresh_from_db()
    assert (image.status, image.size) == (S.QUEUED, None)
    assert image.transitions.last().operation == "upload_failed"


def test_upload_needs_the_change_permission(client, rescuer, alice):
    image = services.image_create(actor=alice, name="empty", disk_format="raw")
    upload = io.BytesIO(b"x")
    upload.name = "x"
    assert client_for(client, rescuer).post(url(image, "upload"), {"data": upload}).status_code == (
        403
    )
    image.refresh_from_db()
    assert image.status == S.QUEUED


def test_transition_buttons_follow_the_fsm_and_the_permissions(admin_user, rescuer):
    for status in S.values:
        image = image_in(status, save=False)
        offered = {t.name for t in available_transitions(admin_user, image)}
        allowed = {name for name in ADMIN_TRANSITIONS if can_proceed(getattr(image, name))}
        assert offered == allowed, status
        rescuers = {t.name for t in available_transitions(rescuer, image)}
        assert rescuers == ({"restore"} if status == S.PENDING_DELETE else set()), status
