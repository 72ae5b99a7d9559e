"""Domain operations: outcomes in the database, the store and the history."""

import hashlib
import io
import os
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from images import services
from images.enums import LocationStatus, Operation, Status
from images.errors import (
    Conflict,
    Forbidden,
    ImageNotFound,
    ImageTooLarge,
    InvalidInput,
    InvalidTransition,
    StoreError,
)
from images.models import Image, ImageTransition

pytestmark = pytest.mark.django_db


def _history(image):
    return list(
        ImageTransition.objects.filter(image=image).values_list("source", "target", "operation")
    )


def _queued(alice, **fields):
    fields.setdefault("disk_format", "raw")
    fields.setdefault("container_format", "bare")
    return services.image_create(actor=alice, name="cirros", **fields)


def _uploaded(alice, data: bytes, **fields):
    image = _queued(alice, **fields)
    return services.image_upload(
        image=image, actor=alice, stream=io.BytesIO(data), declared_size=len(data)
    )


def _store_files(image_store):
    return sorted(os.listdir(image_store)) if image_store.exists() else []


# --- create ---


def test_image_create_is_queued_and_owned_by_creator(alice):
    image = services.image_create(
        actor=alice, name="cirros", tags=["a", "b"], properties={"os_distro": "cirros"}
    )
    image.refresh_from_db()
    assert (image.status, image.owner, image.visibility) == (Status.QUEUED, "alice", "shared")
    assert sorted(image.tags.values_list("value", flat=True)) == ["a", "b"]
    assert dict(image.properties.values_list("name", "value")) == {"os_distro": "cirros"}
    assert _history(image) == [("", Status.QUEUED, Operation.CREATE)]


def test_image_create_with_size_zero_is_active_and_empty(alice):
    image = _queued(alice, size=0)
    image.refresh_from_db()
    assert (image.status, image.size, image.checksum) == (
        Status.ACTIVE,
        0,
        hashlib.md5(b"").hexdigest(),
    )
    assert _history(image) == [("", Status.ACTIVE, Operation.CREATE)]
    data = services.image_download(image=image, actor=alice)
    assert (data.size, data.empty) == (0, True)


def test_image_create_with_external_location_is_active_without_saving(alice):
    image = _queued(alice, location_url="http://example.invalid/cirros.img")
    image.refresh_from_db()
    assert image.status == Status.ACTIVE
    assert _history(image) == [("", Status.ACTIVE, Operation.ADD_LOCATION)]
    assert list(image.locations.values_list("url", "in_store")) == [
        ("http://example.invalid/cirros.img", False)
    ]


def test_image_create_active_requires_formats(alice):
    with pytest.raises(InvalidInput, match="container_format must be set"):
        services.image_create(actor=alice, size=0, disk_format="raw")
    assert Image.objects.count() == 0


def test_image_create_rejects_nonzero_size(alice):
    with pytest.raises(InvalidInput, match="Only a size of 0"):
        _queued(alice, size=10)
    assert Image.objects.count() == 0


def test_image_create_duplicate_id_conflicts(alice):
    image = _queued(alice)
    with pytest.raises(Conflict, match="already exists"):
        _queued(alice, image_id=image.id)
    assert Image.objects.count() == 1


def test_image_create_public_needs_admin(alice, admin_user):
    with pytest.raises(Forbidden, match="public"):
        _queued(alice, visibility="public")
    assert _queued(admin_user, visibility="public").visibility == "public"


# --- update ---


def test_image_update_changes_metadata_tags_and_properties(alice):
    image = _queued(alice, properties={"old": "1", "keep": "2"})
    image = services.image_update(
        image=image,
        actor=alice,
        changes={"name": "renamed", "min_ram": 512},
        tags=["x"],
        properties={"new": "3"},
        remove_properties=["old"],
    )
    image.refresh_from_db()
    assert (image.name, image.min_ram) == ("renamed", 512)
    assert list(image.tags.values_list("value", flat=True)) == ["x"]
    assert dict(image.properties.values_list("name", "value")) == {"keep": "2", "new": "3"}


def test_image_update_refuses_status_and_others_images(alice, bob):
    image = _queued(alice)
    with pytest.raises(Forbidden, match="'status' is read-only"):
        services.image_update(image=image, actor=alice, changes={"status": "active"})
    with pytest.raises(Forbidden, match="not permitted"):
        services.image_update(image=image, actor=bob, changes={"name": "mine"})
    image.refresh_from_db()
    assert (image.status, image.name) == (Status.QUEUED, "cirros")


def test_image_update_formats_only_while_queued(alice):
    image = _uploaded(alice, b"data")
    with pytest.raises(Forbidden, match="disk_format can be only replaced for a queued image"):
        services.image_update(image=image, actor=alice, changes={"disk_format": "qcow2"})
    image.refresh_from_db()
    assert image.disk_format == "raw"


def test_image_update_removing_missing_property_changes_nothing(alice):
    image = _queued(alice)
    with pytest.raises(Conflict, match="Property nope does not exist"):
        services.image_update(
            image=image, actor=alice, changes={"name": "x"}, remove_properties=["nope"]
        )
    image.refresh_from_db()
    assert image.name == "cirros"


def test_image_tags_over_quota_refused_and_nothing_changes(alice):
    image = _queued(alice, tags=[f"t{i}" for i in range(services.IMAGE_TAG_QUOTA)])
    with pytest.raises(ImageTooLarge, match="Maximum number of tags exceeded"):
        services.image_add_tag(image=image, actor=alice, tag="one-more")
    services.image_add_tag(image=image, actor=alice, tag="t0")  # a repeat is fine
    with pytest.raises(ImageTooLarge, match="Maximum number of tags exceeded"):
        services.image_update(
            image=image,
            actor=alice,
            changes={"name": "renamed"},
            tags=[f"x{i}" for i in range(services.IMAGE_TAG_QUOTA + 1)],
        )
    image.refresh_from_db()
    assert image.name == "cirros"
    assert image.tags.count() == services.IMAGE_TAG_QUOTA
    assert not image.tags.filter(value__startswith="x").exists()


def test_image_properties_over_quota_refused_and_nothing_changes(alice):
    quota = services.IMAGE_PROPERTY_QUOTA
    with pytest.raises(ImageTooLarge, match="Maximum number of properties exceeded"):
        _queued(alice, properties={f"p{i}": "v" for i in range(quota + 1)})
    assert Image.objects.count() == 0
    image = _queued(alice, properties={f"p{i}": "v" for i in range(quota)})
    with pytest.raises(ImageTooLarge, match="Maximum number of properties exceeded"):
        services.image_update(image=image, actor=alice, properties={"extra": "v"})
    assert image.properties.count() == quota
    services.image_update(image=image, actor=alice, properties={"p0": "changed"})
    assert image.properties.get(name="p0").value == "changed"


# --- upload ---


def test_image_upload_stores_bytes_and_hashes(alice, payload, image_store):
    image = _uploaded(alice, payload)
    image.refresh_from_db()
    assert image.status == Status.ACTIVE
    assert image.size == len(payload)
    assert image.checksum == hashlib.md5(payload).hexdigest()
    assert (image.os_hash_algo, image.os_hash_value) == (
        "sha512",
        hashlib.sha512(payload).hexdigest(),
    )
    assert (image_store / str(image.id)).read_bytes() == payload
    assert _store_files(image_store) == [str(image.id)]
    assert [op for *_, op in _history(image)] == [Operation.CREATE, "upload", "upload"]
    data = services.image_download(image=image, actor=alice)
    with data.open() as f:
        assert f.read() == payload


def test_image_upload_needs_formats(alice, image_store):
    image = services.image_create(actor=alice, name="no formats")
    with pytest.raises(InvalidInput, match="Property container_format must be set"):
        services.image_upload(image=image, actor=alice, stream=io.BytesIO(b"x"))
    image.refresh_from_db()
    assert image.status == Status.QUEUED
    assert _store_files(image_store) == []


def _assert_upload_failed(image, image_store, reason):
    image.refresh_from_db()
    assert image.status == Status.QUEUED
    assert (image.size, image.checksum, image.os_hash_value) == (None, None, None)
    assert not [name for name in _store_files(image_store) if name.startswith(str(image.id))]
    last = ImageTransition.objects.filter(image=image).last()
    assert (last.source, last.target, last.operation) == (
        Status.SAVING,
        Status.QUEUED,
        Operation.UPLOAD_FAILED,
    )
    assert reason in last.reason


def test_image_upload_size_mismatch_returns_to_queued(alice, payload, image_store):
    image = _queued(alice)
    with pytest.raises(InvalidInput, match="Size mismatch"):
        services.image_upload(
            image=image, actor=alice, stream=io.BytesIO(payload), declared_size=len(payload) + 1
        )
    _assert_upload_failed(image, image_store, "Size mismatch")


def test_image_upload_over_cap_returns_to_queued(alice, payload, image_store, settings):
    settings.IMAGES_SIZE_CAP = 1024 * 1024
    image = _queued(alice)
    with pytest.raises(ImageTooLarge, match="too large"):
        services.image_upload(image=image, actor=alice, stream=io.BytesIO(payload))
    _assert_upload_failed(image, image_store, "too large")


def test_image_upload_declared_over_cap_refused_before_saving(alice, image_store, settings):
    settings.IMAGES_SIZE_CAP = 10
    image = _queued(alice)
    with pytest.raises(ImageTooLarge):
        services.image_upload(
            image=image, actor=alice, stream=io.BytesIO(b"x" * 11), declared_size=11
        )
    image.refresh_from_db()
    assert image.status == Status.QUEUED
    assert _history(image) == [("", Status.QUEUED, Operation.CREATE)]


def test_image_upload_over_quota_returns_to_queued(alice, image_store, settings):
    settings.IMAGES_USER_STORAGE_QUOTA = 1000
    _uploaded(alice, b"x" * 600)
    image = _queued(alice)
    with pytest.raises(ImageTooLarge, match=r"storage quota.*400 bytes remaining"):
        services.image_upload(image=image, actor=alice, stream=io.BytesIO(b"y" * 500))
    _assert_upload_failed(image, image_store, "storage quota")
    assert _store_files(image_store) != []  # the first image keeps its data


def test_image_upload_failing_store_returns_to_queued(alice, payload, failing_store, image_store):
    failing_store(fail_deletes=False)
    image = _queued(alice)
    with pytest.raises(StoreError, match="store failed while writing"):
        services.image_upload(image=image, actor=alice, stream=io.BytesIO(payload))
    _assert_upload_failed(image, image_store, "injected")


FAIL_LOCATION_INSERT = {
    "sqlite": [
        "CREATE TRIGGER fail_location BEFORE INSERT ON images_imagelocation "
        "BEGIN SELECT RAISE(ABORT, 'injected database failure'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'injected database failure'; END $$",
        "CREATE TRIGGER fail_location BEFORE INSERT ON images_imagelocation "
        "FOR EACH ROW EXECUTE FUNCTION fail_insert()",
    ],
}


def test_image_upload_database_failure_after_bytes_leaves_no_file(alice, payload, image_store):
    image = _queued(alice)
    with connection.cursor() as cursor:
        for statement in FAIL_LOCATION_INSERT[connection.vendor]:
            cursor.execute(statement)
    with pytest.raises(DatabaseError, match="injected database failure"):
        services.image_upload(image=image, actor=alice, stream=io.BytesIO(payload))
    _assert_upload_failed(image, image_store, "recording the upload failed")


def test_image_upload_to_active_image_conflicts(alice, payload, image_store):
    image = _uploaded(alice, payload)
    with pytest.raises(InvalidTransition, match="from active to saving is not allowed"):
        services.image_upload(image=image, actor=alice, stream=io.BytesIO(b"other"))
    assert (image_store / str(image.id)).read_bytes() == payload


def test_image_upload_by_other_user_refused(alice, bob, image_store):
    image = _queued(alice)
    with pytest.raises(Forbidden):
        services.image_upload(image=image, actor=bob, stream=io.BytesIO(b"x"))
    image.refresh_from_db()
    assert image.status == Status.QUEUED


# --- deactivate and download ---


def test_image_deactivate_blocks_download_for_non_admins(alice, admin_user):
    image = _uploaded(alice, b"data")
    image = services.image_deactivate(image=image, actor=alice)
    assert image.status == Status.DEACTIVATED
    with pytest.raises(Forbidden, match="deactivated"):
        services.image_download(image=image, actor=alice)
    assert services.image_download(image=image, actor=admin_user).size == 4
    image = services.image_reactivate(image=image, actor=alice)
    assert image.status == Status.ACTIVE
    assert [op for *_, op in _history(image)][-2:] == ["deactivate", "reactivate"]


def test_image_deactivate_queued_image_refused(alice):
    image = _queued(alice)
    with pytest.raises(Forbidden, match="Not allowed to deactivate image in status 'queued'"):
        services.image_deactivate(image=image, actor=alice)


def test_image_deactivate_twice_is_a_quiet_repeat(alice):
    image = services.image_deactivate(image=_uploaded(alice, b"d"), actor=alice)
    services.image_deactivate(image=image, actor=alice)
    assert [op for *_, op in _history(image)].count("deactivate") == 1


def test_image_download_queued_has_no_data(alice):
    assert services.image_download(image=_queued(alice), actor=alice) is None


def test_image_download_missing_bytes_is_a_store_error(alice, image_store):
    image = _uploaded(alice, b"data")
    (image_store / str(image.id)).unlink()
    with pytest.raises(StoreError, match="missing from the store"):
        services.image_download(image=image, actor=alice)


# --- delete, restore, scrub ---


def test_image_delete_delayed_keeps_everything_until_restore(
    alice, recovery_staff, payload, image_store
):
    image = _uploaded(alice, payload)
    services.image_update(image=image, actor=alice, tags=["t1"], properties={"p": "v"})
    image = services.image_delete(image=image, actor=alice)
    assert image.status == Status.PENDING_DELETE
    assert image.deleted_at is not None
    assert (image_store / str(image.id)).read_bytes() == payload
    assert list(image.locations.values_list("status", flat=True)) == [LocationStatus.PENDING_DELETE]

    image = services.image_restore(image=image, actor=recovery_staff)
    image.refresh_from_db()
    assert (image.status, image.deleted_at) == (Status.ACTIVE, None)
    assert list(image.locations.values_list("status", flat=True)) == [LocationStatus.ACTIVE]
    assert list(image.tags.values_list("value", flat=True)) == ["t1"]
    assert dict(image.properties.values_list("name", "value")) == {"p": "v"}
    with services.image_download(image=image, actor=alice).open() as f:
        assert f.read() == payload
    history = ImageTransition.objects.filter(image=image).values_list("operation", "actor")
    assert list(history)[-2:] == [("delete", "alice"), ("restore", "rita")]


def test_image_delete_deactivated_restores_deactivated(alice, recovery_staff):
    image = services.image_deactivate(image=_uploaded(alice, b"d"), actor=alice)
    image = services.image_delete(image=image, actor=alice)
    assert image.status == Status.PENDING_DELETE
    assert services.image_restore(image=image, actor=recovery_staff).status == Status.DEACTIVATED


def test_image_delete_protected_refused(alice, image_store):
    image = _uploaded(alice, b"data", protected=True)
    with pytest.raises(Forbidden, match=f"Image {image.id} is protected and cannot be deleted."):
        services.image_delete(image=image, actor=alice)
    image.refresh_from_db()
    assert image.status == Status.ACTIVE
    assert (image_store / str(image.id)).exists()


def test_image_delete_immediate_removes_data(alice, image_store, settings):
    settings.IMAGES_DELAYED_DELETE = False
    image = services.image_delete(image=_uploaded(alice, b"data"), actor=alice)
    assert image.status == Status.DELETED
    assert _store_files(image_store) == []
    assert list(image.locations.values_list("status", flat=True)) == [LocationStatus.DELETED]


def test_image_delete_queued_is_deleted_at_once(alice):
    image = services.image_delete(image=_queued(alice), actor=alice)
    assert image.status == Status.DELETED


def test_image_delete_by_other_user_refused(alice, bob):
    image = _queued(alice)
    with pytest.raises(Forbidden):
        services.image_delete(image=image, actor=bob)


def test_image_delete_twice_not_found(alice):
    image = services.image_delete(image=_queued(alice), actor=alice)
    with pytest.raises(ImageNotFound):
        services.image_delete(image=image, actor=alice)


def test_image_restore_needs_permission(alice):
    image = services.image_delete(image=_uploaded(alice, b"d"), actor=alice)
    with pytest.raises(Forbidden, match="not permitted to restore"):
        services.image_restore(image=image, actor=alice)
    image.refresh_from_db()
    assert image.status == Status.PENDING_DELETE


def test_image_restore_of_live_image_refused(alice, recovery_staff):
    image = _uploaded(alice, b"d")
    with pytest.raises(InvalidTransition, match="is active, not pending_delete"):
        services.image_restore(image=image, actor=recovery_staff)


def _age(image, seconds):
    Image.objects.filter(pk=image.pk).update(deleted_at=timezone.now() - timedelta(seconds=seconds))


def test_scrub_leaves_images_before_delay(alice, image_store, settings):
    settings.IMAGES_SCRUB_DELAY_SECONDS = 3600
    image = services.image_delete(image=_uploaded(alice, b"data"), actor=alice)
    _age(image, 3500)
    report = services.images_scrub_due()
    image.refresh_from_db()
    assert (report.scrubbed, image.status) == ([], Status.PENDING_DELETE)
    assert (image_store / str(image.id)).exists()


def test_scrub_removes_data_then_marks_deleted(alice, image_store, settings):
    settings.IMAGES_SCRUB_DELAY_SECONDS = 3600
    image = services.image_delete(image=_uploaded(alice, b"data"), actor=alice)
    _age(image, 3601)
    report = services.images_scrub_due()
    image.refresh_from_db()
    assert (report.scrubbed, image.status) == ([image.pk], Status.DELETED)
    assert not [name for name in _store_files(image_store) if name.startswith(str(image.id))]
    last = ImageTransition.objects.filter(image=image).last()
    assert (last.operation, last.actor) == (Operation.SCRUB, "scrubber")


def test_scrub_store_failure_keeps_pending_delete_and_retries(
    alice, image_store, failing_store, settings
):
    image = services.image_delete(image=_uploaded(alice, b"data"), actor=alice)
    _age(image, settings.IMAGES_SCRUB_DELAY_SECONDS + 1)
    failing_store(fail_writes=False)
    report = services.images_scrub_due()
    image.refresh_from_db()
    assert (report.failed, image.status) == ([image.pk], Status.PENDING_DELETE)
    assert (image_store / str(image.id)).exists()
    # Nothing was removed, so the image may still be restored.
    assert (
        image.scrub_started_at is None or image.locations.filter(status="pending_delete").exists()
    )

    failing_store(fail_writes=False, fail_deletes=False)
    report = services.images_scrub_due()
    image.refresh_from_db()
    assert (report.scrubbed, image.status) == ([image.pk], Status.DELETED)
    assert not (image_store / str(image.id)).exists()


def test_scrub_leaves_image_claimed_by_another_scrubber_within_lease(alice, image_store, settings):
    settings.IMAGES_SCRUB_CLAIM_SECONDS = 600
    image = services.image_delete(image=_uploaded(alice, b"data"), actor=alice)
    _age(image, settings.IMAGES_SCRUB_DELAY_SECONDS + 1)
    # Another node's scrubber claimed it a minute ago and is removing its data.
    Image.objects.filter(pk=image.pk).update(
        scrub_started_at=timezone.now() - timedelta(seconds=60)
    )

    report = services.images_scrub_due()
    with pytest.raises(InvalidTransition, match="is being scrubbed by another scrubber"):
        services.image_scrub(image=image)

    image.refresh_from_db()
    assert (report.scrubbed, report.failed, image.status) == ([], [], Status.PENDING_DELETE)
    assert (image_store / str(image.id)).exists()
    assert _history(image)[-1] == (Status.ACTIVE, Status.PENDING_DELETE, Operation.DELETE)


def test_scrub_takes_over_claim_older_than_lease(alice, image_store, settings):
    settings.IMAGES_SCRUB_CLAIM_SECONDS = 600
    image = services.image_delete(image=_uploaded(alice, b"data"), actor=alice)
    _age(image, settings.IMAGES_SCRUB_DELAY_SECONDS + 1)
    # The scrubber that claimed it died eleven minutes ago.
    Image.objects.filter(pk=image.pk).update(
        scrub_started_at=timezone.now() - timedelta(seconds=660)
    )

    report = services.images_scrub_due()

    image.refresh_from_db()
    assert (report.scrubbed, image.status) == ([image.pk], Status.DELETED)
    assert not (image_store / str(image.id)).exists()
    assert [row[2] for row in _history(image)].count(Operation.SCRUB) == 1


def test_scrub_store_failure_after_some_data_went_keeps_claim_and_next_pass_retries(
    alice, recovery_staff, image_store, failing_store, settings
):
    image = _uploaded(alice, b"data")
    # Two locations: an external one (nothing of ours to remove) first, then ours.
    first = image.locations.get()
    image.locations.create(url=first.url, in_store=True)
    image.locations.filter(pk=first.pk).update(url="http://example.org/x", in_store=False)
    image = services.image_delete(image=image, actor=alice)
    _age(image, settings.IMAGES_SCRUB_DELAY_SECONDS + 1)
    failing_store(fail_writes=False)

    report = services.images_scrub_due()
    image.refresh_from_db()
    assert (report.failed, image.status) == ([image.pk], Status.PENDING_DELETE)
    assert image.scrub_started_at is not None  # a location is gone: no restore now
    with pytest.raises(InvalidTransition, match="scrubber has begun removing its data"):
        services.image_restore(image=image, actor=recovery_staff)

    failing_store(fail_writes=False, fail_deletes=False)
    report = services.images_scrub_due()
    image.refresh_from_db()
    assert (report.scrubbed, image.status) == ([image.pk], Status.DELETED)
    assert not (image_store / str(image.id)).exists()


def test_scrub_of_restored_image_refused(alice, recovery_staff, image_store):
    image = services.image_delete(image=_uploaded(alice, b"data"), actor=alice)
    services.image_restore(image=image, actor=recovery_staff)
    with pytest.raises(InvalidTransition):
        services.image_scrub(image=image)
    assert (image_store / str(image.id)).exists()


def test_scrub_leaves_image_deleted_again_after_it_was_found(alice, image_store):
    image = services.image_delete(image=_uploaded(alice, b"data"), actor=alice)
    found_at = timezone.now() - timedelta(seconds=1)  # the scan ran before this delete
    with pytest.raises(InvalidTransition, match="not due"):
        services.image_scrub(image=image, due_by=found_at)
    image.refresh_from_db()
    assert (image.status, image.scrub_started_at) == (Status.PENDING_DELETE, None)
    assert (image_store / str(image.id)).exists()


def test_scrub_by_non_superuser_refused(alice, recovery_staff):
    image = services.image_delete(image=_uploaded(alice, b"data"), actor=alice)
    with pytest.raises(Forbidden):
        services.image_scrub(image=image, actor=recovery_staff)


def test_immediate_delete_store_failure_is_finished_by_scrubber(
    alice, image_store, failing_store, settings
):
    settings.IMAGES_DELAYED_DELETE = False
    image = _uploaded(alice, b"data")
    failing_store(fail_writes=False)
    image = services.image_delete(image=image, actor=alice)
    assert image.status == Status.DELETED
    assert (image_store / str(image.id)).exists()
    failing_store(fail_writes=False, fail_deletes=False)
    report = services.images_scrub_due()
    assert report.swept == [image.pk]
    assert not (image_store / str(image.id)).exists()
    assert list(image.locations.values_list("status", flat=True)) == [LocationStatus.DELETED]


# --- janitor and purge ---


def test_janitor_kills_stale_upload_and_removes_partial(alice, image_store, settings):
    settings.IMAGES_UPLOAD_STALE_SECONDS = 60
    image = _queued(alice)
    # A worker that died mid-upload: saving, a partial file, no heartbeat since.
    fresh = Image.objects.get(pk=image.pk)
    fresh.begin_upload(now=timezone.now() - timedelta(seconds=120))
    fresh.save()
    partial = image_store / f"{image.id}.partial"
    image_store.mkdir(exist_ok=True)
    partial.write_bytes(b"half an image")

    report = services.images_kill_stale_uploads()
    image.refresh_from_db()
    assert (report.killed, image.status) == ([image.pk], Status.KILLED)
    assert not partial.exists()
    assert (
        "no upload progress for 60 seconds"
        in ImageTransition.objects.filter(image=image).last().reason
    )


def test_janitor_removes_what_a_killed_upload_left_once_the_store_lets_it(
    alice, failing_store, settings, tmp_path
):
    # On RBD a crashed writer's watch blocks the removal for a while after the kill: the
    # bytes stay, and a later pass removes them.
    settings.IMAGES_UPLOAD_STALE_SECONDS = 60
    failing_store(fail_writes=False, fail_deletes=True)
    image = _queued(alice)
    fresh = Image.objects.get(pk=image.pk)
    fresh.begin_upload(now=timezone.now() - timedelta(seconds=120))
    fresh.save()
    leftover = tmp_path / "store" / str(image.id)
    leftover.parent.mkdir()
    leftover.write_bytes(b"written by a node that died")

    assert services.images_kill_stale_uploads().killed == [image.pk]
    assert leftover.exists()
    assert services.images_remove_killed_leftovers().leftovers == []
    failing_store(fail_writes=False, fail_deletes=False)  # the store lets it go now
    report = services.scrubber_pass()
    assert (report.leftovers, leftover.exists()) == ([image.pk], False)
    assert services.images_remove_killed_leftovers().leftovers == []  # nothing left to do


def test_janitor_removes_bytes_renamed_into_place_but_never_recorded(alice, image_store, settings):
    # The worker died after renaming the data into place, before recording it.
    settings.IMAGES_UPLOAD_STALE_SECONDS = 60
    image = _queued(alice)
    fresh = Image.objects.get(pk=image.pk)
    fresh.begin_upload(now=timezone.now() - timedelta(seconds=120))
    fresh.save()
    image_store.mkdir(exist_ok=True)
    (image_store / str(image.id)).write_bytes(b"a whole image, recorded nowhere")

    assert services.images_kill_stale_uploads().killed == [image.pk]
    assert list(image_store.iterdir()) == []
    assert services.store_verify().clean


def test_janitor_leaves_live_uploads(alice, settings):
    settings.IMAGES_UPLOAD_STALE_SECONDS = 60
    image = _queued(alice)
    fresh = Image.objects.get(pk=image.pk)
    fresh.begin_upload(now=timezone.now() - timedelta(seconds=30))
    fresh.save()
    assert services.images_kill_stale_uploads().killed == []
    fresh.refresh_from_db()
    assert fresh.status == Status.SAVING


def test_purge_removes_only_old_deleted_records(alice, settings):
    settings.IMAGES_PURGE_AFTER_DAYS = 30
    old = services.image_delete(image=_queued(alice), actor=alice)
    recent = services.image_delete(image=_queued(alice), actor=alice)
    live = _queued(alice)
    Image.objects.filter(pk=old.pk).update(deleted_at=timezone.now() - timedelta(days=31))
    Image.objects.filter(pk=recent.pk).update(deleted_at=timezone.now() - timedelta(days=29))
    assert services.images_purge() == 1
    assert set(Image.objects.values_list("pk", flat=True)) == {recent.pk, live.pk}


# --- store verification ---


def test_store_verify_clean_store(alice, recovery_staff):
    _uploaded(alice, b"live")
    services.image_delete(image=_uploaded(alice, b"pending"), actor=alice)
    report = services.store_verify(rehash=True)
    assert (report.orphans, report.missing, report.corrupt, report.clean) == ([], [], [], True)


def test_store_verify_finds_orphans_missing_and_corrupt(alice, image_store):
    missing = _uploaded(alice, b"will vanish")
    corrupt = _uploaded(alice, b"will rot")
    (image_store / str(missing.pk)).unlink()
    (image_store / str(corrupt.pk)).write_bytes(b"rotten")
    (image_store / "stray-object").write_bytes(b"nobody's")
    report = services.store_verify(rehash=True)
    assert report.orphans == ["stray-object"]
    assert report.missing == [missing.pk]
    assert report.corrupt == [corrupt.pk]
    assert (image_store / "stray-object").exists()  # reporting removes nothing


def test_store_verify_without_rehash_skips_checksums(alice, image_store):
    image = _uploaded(alice, b"will rot")
    (image_store / str(image.pk)).write_bytes(b"rotten")
    assert services.store_verify().clean


def test_store_verify_removes_orphans_but_not_uploads_in_progress(alice, image_store):
    uploading = Image.objects.get(pk=_queued(alice).pk)
    uploading.begin_upload(now=timezone.now())
    uploading.save()
    live = _uploaded(alice, b"live")
    (image_store / f"{uploading.pk}.partial").write_bytes(b"half")
    (image_store / "stray-object").write_bytes(b"nobody's")
    report = services.store_verify(remove_orphans=True)
    assert report.removed == ["stray-object"]
    assert sorted(os.listdir(image_store)) == sorted([f"{uploading.pk}.partial", str(live.pk)])
