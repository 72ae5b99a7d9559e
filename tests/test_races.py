"""Races with real concurrent connections on PostgreSQL: exactly one side wins,
the other gets a clear conflict, and no live image loses its data."""

import io
import itertools
import os
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from images import services
from images.enums import Operation, Status
from images.errors import ImageError, InvalidTransition
from images.models import Image, ImageTask, ImageTransition
from images.services.import_worker import stages_reap_stale
from tests.counting_storage import counted_deletes
from tests.factories import image_in, pending_delete_in_bulk

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks and concurrent connections")


def _race(*calls):
    """Run the calls at the same moment, each on its own connection; return outcomes."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            outcomes[index] = call()
        except ImageError as exc:
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def _active(alice, data):
    image = services.image_create(
        actor=alice, name="raced", disk_format="raw", container_format="bare"
    )
    return services.image_upload(image=image, actor=alice, stream=io.BytesIO(data))


@pytest.mark.parametrize("attempt", range(8))
def test_race_restore_against_scrub_has_one_winner(attempt, alice, recovery_staff, image_store):
    data = os.urandom(256 * 1024)
    image = services.image_delete(image=_active(alice, data), actor=alice)
    Image.objects.filter(pk=image.pk).update(deleted_at=timezone.now() - timedelta(days=2))

    restored, scrubbed = _race(
        lambda: services.image_restore(image=image, actor=recovery_staff),
        lambda: services.image_scrub(image=image),
    )
    image.refresh_from_db()
    errors = [o for o in (restored, scrubbed) if isinstance(o, ImageError)]
    assert len(errors) == 1, (restored, scrubbed)
    assert isinstance(errors[0], InvalidTransition)
    if image.status == Status.ACTIVE:
        assert (image_store / str(image.pk)).read_bytes() == data
        assert errors[0] is scrubbed
    else:
        assert image.status == Status.DELETED
        assert not (image_store / str(image.pk)).exists()
        assert errors[0] is restored
    operations = list(image.transitions.values_list("operation", flat=True))
    assert operations[-1] in ("restore", "scrub")
    assert operations.count("restore") + operations.count("scrub") == 1


class _GatedStream(io.BytesIO):
    """Holds its bytes back until the gate opens, so the two uploads overlap."""

    def __init__(self, data, gate):
        super().__init__(data)
        self.gate = gate

    def read(self, size=-1):
        self.gate.wait(timeout=10)
        return super().read(size)


@pytest.mark.parametrize("attempt", range(5))
def test_race_two_uploads_to_one_image_has_one_winner(attempt, alice, image_store):
    image = services.image_create(
        actor=alice, name="raced", disk_format="raw", container_format="bare"
    )
    first, second = os.urandom(512 * 1024), os.urandom(512 * 1024)
    loser_refused = threading.Event()

    def upload(data):
        try:
            stream = _GatedStream(data, loser_refused)
            return services.image_upload(image=image, actor=alice, stream=stream)
        except ImageError:
            loser_refused.set()
            raise

    outcomes = _race(lambda: upload(first), lambda: upload(second))
    losers = [o for o in outcomes if isinstance(o, ImageError)]
    assert len(losers) == 1
    assert "transition from saving to saving is not allowed" in losers[0].message
    winner = first if losers[0] is outcomes[1] else second
    image.refresh_from_db()
    assert image.status == Status.ACTIVE
    assert (image_store / str(image.pk)).read_bytes() == winner
    assert image.locations.count() == 1


LIVE = {Status.ACTIVE, Status.DEACTIVATED, Status.PENDING_DELETE}


@pytest.mark.parametrize("attempt", range(3))
def test_race_twenty_restores_deletes_and_scrubs_end_consistent(
    attempt, alice, recovery_staff, image_store
):
    data = os.urandom(128 * 1024)
    image = services.image_delete(image=_active(alice, data), actor=alice)
    Image.objects.filter(pk=image.pk).update(deleted_at=timezone.now() - timedelta(days=2))

    def restore():
        return services.image_restore(image=image, actor=recovery_staff)

    def delete():
        return services.image_delete(image=Image.objects.get(pk=image.pk), actor=alice)

    def scrub():
        return services.image_scrub(image=image)

    calls = [restore, delete, scrub, restore, scrub] * 4
    outcomes = _race(*calls)
    assert not [o for o in outcomes if isinstance(o, Exception) and not isinstance(o, ImageError)]

    image.refresh_from_db()
    history = list(image.transitions.values_list("source", "target"))
    # The history is one unbroken path from creation to the status the image has now.
    assert history[0][0] == ""
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(history))
    assert history[-1][1] == image.status
    has_bytes = (image_store / str(image.pk)).exists()
    if image.status in LIVE:
        assert has_bytes and (image_store / str(image.pk)).read_bytes() == data
    else:
        assert image.status == Status.DELETED and not has_bytes
    # Every successful restore and delete is one row; the scrubs together make at most one.
    won = [call.__name__ for call, o in zip(calls, outcomes, strict=True) if isinstance(o, Image)]
    scrubbed = int(history[-1] == (Status.PENDING_DELETE, Status.DELETED))
    raced = history[4:]  # after create, upload start, upload finish and the first delete
    assert len(raced) == won.count("restore") + won.count("delete") + scrubbed


# --- several nodes' janitors at once: each piece of work done, and told, once --------


def test_race_three_scrubbers_scrub_each_image_once(tmp_path, image_store, settings):
    log = tmp_path / "deletes.log"
    settings.STORAGES = {
        **settings.STORAGES,
        "images": {
            "BACKEND": "tests.counting_storage.CountingStorage",
            "OPTIONS": {"location": str(image_store), "log": str(log)},
        },
    }
    doomed = pending_delete_in_bulk(
        900, deleted_at=timezone.now() - timedelta(seconds=settings.IMAGES_SCRUB_DELAY_SECONDS + 1)
    )

    reports = _race(*[services.images_scrub_due] * 3)

    scrubbed = [pk for report in reports for pk in report.scrubbed]
    assert sorted(scrubbed) == sorted(doomed)  # each once, by one scrubber
    assert [report.failed for report in reports] == [[], [], []]
    assert sorted(counted_deletes(log)) == sorted(str(pk) for pk in doomed)
    rows = ImageTransition.objects.filter(operation=Operation.SCRUB).values_list("image_id")
    assert list(rows.annotate(n=Count("id")).filter(n__gt=1)) == []
    assert rows.count() == len(doomed)
    assert Image.objects.filter(status=Status.DELETED).count() == len(doomed)


def test_race_two_janitors_kill_a_stale_upload_once(alice, image_store, settings):
    settings.IMAGES_UPLOAD_STALE_SECONDS = 60
    image = image_in(Status.QUEUED, owner="alice")
    image.begin_upload(now=timezone.now() - timedelta(seconds=120))  # its worker died
    image.save()
    image_store.mkdir(exist_ok=True)
    (image_store / f"{image.pk}.partial").write_bytes(b"half an image")

    reports = _race(services.images_kill_stale_uploads, services.images_kill_stale_uploads)

    assert sorted(len(report.killed) for report in reports) == [0, 1]
    operations = list(image.transitions.values_list("operation", flat=True))
    assert operations == [Operation.KILL]
    assert list(image_store.iterdir()) == []


def test_race_two_janitors_undo_an_abandoned_import_once(alice, image_store, settings):
    image = image_in(Status.IMPORTING, owner="alice")
    task = ImageTask.objects.create(
        image=image, owner="alice", type="api_image_import", input={"image_id": str(image.pk)}
    )
    task.start(worker="gone:1", now=timezone.now() - timedelta(hours=1))  # it was SIGKILLed
    task.save()

    undone = _race(services.imports_reap_stale, services.imports_reap_stale)

    assert sorted(undone) == [[], [image.pk]]
    image.refresh_from_db()
    assert image.status == Status.QUEUED
    assert list(image.transitions.values_list("operation", flat=True)) == [Operation.IMPORT_FAILED]


def test_race_two_janitors_undo_a_stalled_stage_once(alice, image_store, settings):
    settings.IMAGES_UPLOAD_STALE_SECONDS = 60
    image = image_in(Status.QUEUED, owner="alice")
    image.stage(now=timezone.now() - timedelta(seconds=120))  # its request died mid-body
    image.save()

    undone = _race(stages_reap_stale, stages_reap_stale)

    assert sorted(undone) == [[], [image.pk]]
    assert list(image.transitions.values_list("operation", flat=True)) == [Operation.IMPORT_FAILED]


def test_race_two_purges_count_each_record_once(alice, settings):
    settings.IMAGES_PURGE_AFTER_DAYS = 30
    old = [image_in(Status.DELETED, owner="alice").pk for _ in range(40)]
    Image.objects.filter(pk__in=old).update(deleted_at=timezone.now() - timedelta(days=31))

    purged = _race(services.images_purge, services.images_purge)

    assert sum(purged) == len(old)
    assert not Image.objects.filter(pk__in=old).exists()


def test_race_two_scrubbers_finish_a_failed_delete_once(tmp_path, alice, image_store, settings):
    settings.IMAGES_DELAYED_DELETE = False
    log = tmp_path / "deletes.log"
    image = _active(alice, os.urandom(4096))
    settings.STORAGES = {
        **settings.STORAGES,
        "images": {
            "BACKEND": "tests.failing_storage.FailingStorage",
            "OPTIONS": {"location": str(image_store), "fail_writes": False},
        },
    }
    image = services.image_delete(image=image, actor=alice)  # its bytes could not go
    settings.STORAGES = {
        **settings.STORAGES,
        "images": {
            "BACKEND": "tests.counting_storage.CountingStorage",
            "OPTIONS": {"location": str(image_store), "log": str(log)},
        },
    }

    reports = _race(services.images_scrub_due, services.images_scrub_due)

    assert sorted(report.swept for report in reports) == [[], [image.pk]]
    assert counted_deletes(log) == [str(image.pk)]
    assert not (image_store / str(image.pk)).exists()
