"""Recycle-bin retention rules (images.services.retention) and the scrubber honouring
them: outcomes in the image rows, the store and the API's recycle-bin listing."""

import io
import threading
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.utils import timezone

from images import selectors, services
from images.enums import Status
from images.errors import Forbidden
from images.models import Image, RetentionRule
from images.services.retention import (
    retention_for,
    retention_recompute,
    retention_rule_delete,
    retention_rule_save,
)
from tests.api import token_client

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _stored(actor, data: bytes = b"image bytes", **fields) -> Image:
    fields.setdefault("disk_format", "raw")
    fields.setdefault("container_format", "bare")
    image = services.image_create(actor=actor, **fields)
    return services.image_upload(
        image=image, actor=actor, stream=io.BytesIO(data), declared_size=len(data)
    )


def _deleted(actor, **fields) -> Image:
    return services.image_delete(image=_stored(actor, **fields), actor=actor)


def _rule(name="keep", *, retention=3 * DAY, locked=False, **criteria) -> RetentionRule:
    rule = RetentionRule(name=name, retention=retention, locked=locked, **criteria)
    return retention_rule_save(rule=rule, actor="system")


def _with_perms(user, *codenames):
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    # has_perm caches the user's permissions: a fresh object sees the new ones.
    return type(user).objects.get(pk=user.pk)


def _status(image) -> str:
    image.refresh_from_db()
    return image.status


@pytest.fixture(autouse=True)
def one_hour_default(settings):
    settings.IMAGES_SCRUB_DELAY_SECONDS = 3600


# --- the scrubber ---


def test_rule_keeps_image_restorable_past_the_default_delay(alice, image_store):
    _rule(tag="golden", retention=3 * DAY)
    kept = _deleted(alice, name="kept", tags=["golden"])
    plain = _deleted(alice, name="plain")

    report = services.images_scrub_due(now=kept.deleted_at + 2 * HOUR)

    assert report.scrubbed == [plain.pk]
    assert (_status(kept), _status(plain)) == (Status.PENDING_DELETE, Status.DELETED)
    assert (image_store / str(kept.pk)).exists()
    restored = services.image_restore(image=kept, actor="system")
    assert restored.status == Status.ACTIVE
    assert restored.retained_until is None


def test_rule_image_is_scrubbed_once_its_retention_ends(alice, image_store):
    _rule(tag="golden", retention=3 * DAY)
    kept = _deleted(alice, tags=["golden"])

    early = services.images_scrub_due(now=kept.deleted_at + 3 * DAY - timedelta(seconds=1))
    late = services.images_scrub_due(now=kept.deleted_at + 3 * DAY)

    assert (early.scrubbed, late.scrubbed) == ([], [kept.pk])
    assert _status(kept) == Status.DELETED
    assert not (image_store / str(kept.pk)).exists()


def test_rule_shorter_than_the_default_scrubs_sooner(alice):
    _rule(owner="alice", retention=10 * timedelta(minutes=1))
    image = _deleted(alice)

    report = services.images_scrub_due(now=image.deleted_at + 11 * timedelta(minutes=1))

    assert (report.scrubbed, _status(image)) == ([image.pk], Status.DELETED)


def test_scrub_due_leaves_an_image_a_rule_lengthened_after_it_was_found(alice):
    image = _deleted(alice, tags=["golden"])
    found = list(selectors.images_due_for_scrub(image.deleted_at + 2 * HOUR, by_rule=False))
    _rule(tag="golden", retention=3 * DAY)

    report = services.images_scrub_due(now=image.deleted_at + 2 * HOUR)

    assert (found, report.scrubbed, _status(image)) == ([image], [], Status.PENDING_DELETE)


# --- matching and precedence ---


@pytest.mark.parametrize(
    ("criteria", "matches"),
    [
        ({}, True),
        ({"owner": "alice"}, True),
        ({"owner": "bob"}, False),
        ({"tag": "golden"}, True),
        ({"tag": "scratch"}, False),
        ({"visibility": "private"}, True),
        ({"visibility": "public"}, False),
        ({"owner": "alice", "tag": "golden", "visibility": "private"}, True),
        ({"owner": "alice", "tag": "scratch", "visibility": "private"}, False),
    ],
)
def test_retention_for_matches_owner_tag_and_visibility(alice, criteria, matches):
    image = _stored(alice, tags=["golden", "base"], visibility="private")
    _rule(retention=5 * DAY, **criteria)

    assert retention_for(image) == (5 * DAY if matches else None)


def test_retention_for_the_longest_matching_rule_wins(alice):
    _rule("owner", owner="alice", retention=2 * DAY)
    _rule("tag", tag="golden", retention=7 * DAY)
    _rule("other owner", owner="bob", retention=30 * DAY)
    _rule("visibility", visibility="shared", retention=DAY)
    image = _deleted(alice, tags=["golden"])

    assert retention_for(image) == 7 * DAY
    assert selectors.scrub_due_at(image) == image.deleted_at + 7 * DAY


def test_retention_recompute_follows_rule_changes_for_the_recycle_bin(alice):
    image = _deleted(alice, tags=["golden"])
    active = _stored(alice, tags=["golden"])
    rule = _rule(tag="golden", retention=3 * DAY)
    image.refresh_from_db()
    assert image.retained_until == image.deleted_at + 3 * DAY

    longer = _rule("longer", owner="alice", retention=9 * DAY)
    image.refresh_from_db()
    assert image.retained_until == image.deleted_at + 9 * DAY

    retention_rule_delete(rule=longer, actor="system")
    retention_rule_delete(rule=rule, actor="system")
    image.refresh_from_db()
    active.refresh_from_db()
    assert (image.retained_until, active.retained_until) == (None, None)
    assert selectors.scrub_due_at(image) == image.deleted_at + HOUR
    assert retention_recompute() == 0


def test_delete_preview_tells_the_rules_scrub_time(alice):
    _rule(tag="golden", retention=3 * DAY)
    image = _stored(alice, tags=["golden"])
    now = image.created_at

    preview = services.image_delete_preview(image=image, actor=alice, now=now)

    assert preview.scrub_at == now + 3 * DAY


def test_pending_delete_listing_shows_the_rules_scrub_time(alice, recovery_staff):
    _rule(tag="golden", retention=3 * DAY)
    image = _deleted(alice, tags=["golden"])

    listed = token_client(recovery_staff).get("/v2/images", {"status": "pending_delete"})

    shown = listed.json()["images"][0]
    due = image.deleted_at + 3 * DAY
    assert shown["os_glance_scrub_at"] == due.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_image_stats_next_scrub_is_the_soonest_of_rules_and_default(alice):
    _rule(tag="soon", retention=timedelta(minutes=5))
    _deleted(alice, name="default")
    soon = _deleted(alice, name="soon", tags=["soon"])

    assert selectors.image_stats().next_scrub_at == soon.deleted_at + timedelta(minutes=5)


# --- the lock ---


def test_locked_rule_shortening_is_refused_without_the_permission(alice, django_user_model):
    rule = _rule(retention=5 * DAY, locked=True)
    editor = _with_perms(django_user_model.objects.create_user("ed"), "change_retentionrule")
    image = _deleted(alice)

    rule.retention = DAY
    with pytest.raises(Forbidden, match="cannot be shortened below 5 days"):
        retention_rule_save(rule=rule, actor=editor)

    rule.refresh_from_db()
    image.refresh_from_db()
    assert (rule.retention, image.retained_until) == (5 * DAY, image.deleted_at + 5 * DAY)


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"locked": False}, "cannot unlock|only holders of the unlock permission may unlock"),
        ({"owner": "bob"}, "its owner cannot be changed"),
        ({"tag": "other"}, "its tag cannot be changed"),
        ({"visibility": "public"}, "its visibility cannot be changed"),
    ],
)
def test_locked_rule_weakening_is_refused_without_the_permission(
    django_user_model, change, refusal
):
    rule = _rule(retention=5 * DAY, locked=True)
    editor = _with_perms(django_user_model.objects.create_user("ed"), "change_retentionrule")
    for name, value in change.items():
        setattr(rule, name, value)

    with pytest.raises(Forbidden, match=refusal):
        retention_rule_save(rule=rule, actor=editor)

    assert RetentionRule.objects.filter(pk=rule.pk, locked=True, owner="", tag="").exists()


def test_locked_rule_lengthening_is_allowed_without_the_permission(django_user_model):
    rule = _rule(retention=5 * DAY, locked=True)
    editor = _with_perms(django_user_model.objects.create_user("ed"), "change_retentionrule")

    rule.retention = 10 * DAY
    rule.description = "kept longer"
    retention_rule_save(rule=rule, actor=editor)

    rule.refresh_from_db()
    assert (rule.retention, rule.description) == (10 * DAY, "kept longer")


def test_locked_rule_shortening_and_delete_are_allowed_with_the_permission(
    alice, django_user_model
):
    rule = _rule(retention=5 * DAY, locked=True)
    keeper = _with_perms(
        django_user_model.objects.create_user("kim"),
        "change_retentionrule",
        "delete_retentionrule",
        "unlock_retention_rule",
    )
    image = _deleted(alice)

    rule.retention = DAY
    retention_rule_save(rule=rule, actor=keeper)
    image.refresh_from_db()
    assert image.retained_until == image.deleted_at + DAY

    retention_rule_delete(rule=rule, actor=keeper)
    image.refresh_from_db()
    assert (RetentionRule.objects.count(), image.retained_until) == (0, None)


def test_locked_rule_delete_is_refused_without_the_permission(django_user_model):
    rule = _rule(locked=True)
    editor = _with_perms(django_user_model.objects.create_user("ed"), "delete_retentionrule")

    with pytest.raises(Forbidden, match="cannot be deleted"):
        retention_rule_delete(rule=rule, actor=editor)

    assert RetentionRule.objects.filter(pk=rule.pk).exists()


def test_rule_change_is_refused_without_the_change_permission(alice):
    rule = _rule()
    rule.retention = DAY
    with pytest.raises(Forbidden, match="not permitted to change retention rules"):
        retention_rule_save(rule=rule, actor=alice)
    rule.refresh_from_db()
    assert rule.retention == 3 * DAY


# --- the due query ---


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="SQLite's EXPLAIN wording")
@pytest.mark.parametrize(
    ("by_rule", "searched"),
    [
        (False, "(status=? AND retained_until=? AND deleted_at<?)"),
        (True, "(status=? AND retained_until<?)"),
    ],
)
def test_images_due_for_scrub_reads_an_index_range(by_rule, searched):
    due = selectors.images_due_for_scrub(timezone.now(), by_rule=by_rule)
    sql, params = due.select_for_update(skip_locked=True)[:200].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = [row[-1] for row in cursor.fetchall()]

    assert f"SEARCH images_image USING INDEX image_status_retained_idx {searched}" in plan


# --- a delete and a rule change at once (PostgreSQL) ---


def _wait_for_a_rule_change_waiting() -> None:
    """Until a connection waits for the rules' advisory lock (polled in pg_locks)."""
    for _ in range(6000):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.01)
    raise AssertionError("the rule change never waited for the delete")


@pytest.mark.django_db(transaction=True)
def test_rule_change_waits_for_a_delete_in_flight_and_covers_its_image(alice):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL advisory locks and concurrent connections")
    image = _stored(alice, tags=["golden"])
    deleted, release = threading.Event(), threading.Event()

    def delete():
        try:
            with transaction.atomic():  # the delete stays uncommitted until released
                services.image_delete(image=image, actor=alice)
                deleted.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    def add_rule():
        try:
            _rule(tag="golden", retention=3 * DAY)
        finally:
            connection.close()

    deleting = threading.Thread(target=delete)
    deleting.start()
    assert deleted.wait(timeout=60)
    adding = threading.Thread(target=add_rule)
    adding.start()
    _wait_for_a_rule_change_waiting()
    release.set()
    deleting.join(timeout=60)
    adding.join(timeout=60)

    image.refresh_from_db()
    assert (image.status, image.retained_until) == (
        Status.PENDING_DELETE,
        image.deleted_at + 3 * DAY,
    )
