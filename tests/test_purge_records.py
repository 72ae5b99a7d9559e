"""images/services/purge_records.py: the purge keeps a compact record of each image
it removes, written in the purge's own transaction."""

import io
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from images import services
from images.enums import Status
from images.models import Image, ImageTransition, PurgedImage
from images.services import purge_records
from tests.factories import image_in

pytestmark = pytest.mark.django_db


def _deleted(alice, name: str, data: bytes = b"abc"):
    image = services.image_create(
        actor=alice, name=name, disk_format="raw", container_format="bare"
    )
    image = services.image_upload(
        image=image, actor=alice, stream=io.BytesIO(data), declared_size=len(data)
    )
    return services.image_delete(image=image, actor=alice)


def _scrub_and_purge(now=None) -> int:
    later = (now or timezone.now()) + timedelta(days=400)
    services.images_scrub_due(now=later)
    return services.images_purge(now=later + timedelta(days=400))


def test_purge_records_keep_the_image_and_its_history(alice):
    image = _deleted(alice, "cirros", b"abcd")
    _scrub_and_purge()
    record = PurgedImage.objects.get(image_id=image.pk)
    assert (record.name, record.owner, record.size) == ("cirros", "alice", 4)
    assert record.checksum == "e2fc714c4727ee9395f324cd2e7f331f"  # md5 of abcd
    assert record.created_at == image.created_at
    assert record.deleted_at is not None and record.purged_at > record.deleted_at
    assert [row[3] for row in record.history] == [
        "queued",
        "saving",
        "active",
        "pending_delete",
        "deleted",
    ]
    assert [row[5] for row in record.history] == ["alice"] * 4 + ["scrubber"]
    assert not Image.objects.filter(pk=image.pk).exists()
    assert not ImageTransition.objects.filter(image_id=image.pk).exists()


def test_purge_records_one_per_image_in_a_batch_with_their_own_rows(alice, monkeypatch):
    monkeypatch.setattr(purge_records, "CHUNK", 2)  # three chunks for five images
    images = [_deleted(alice, f"image-{n}") for n in range(5)]
    assert _scrub_and_purge() == 5
    records = {r.image_id: r for r in PurgedImage.objects.all()}
    assert set(records) == {image.pk for image in images}
    for image in images:
        assert records[image.pk].name == image.name
        assert len(records[image.pk].history) == 5


def test_purge_records_query_count_does_not_grow_with_the_batch(
    alice, django_assert_max_num_queries
):
    for n in range(30):
        _deleted(alice, f"image-{n}")
    later = timezone.now() + timedelta(days=400)
    services.images_scrub_due(now=later)
    ids = list(Image.objects.values_list("pk", flat=True))
    # Two reads and one insert per chunk, whatever its size.
    with django_assert_max_num_queries(3):
        assert purge_records.purged_records_write(ids, now=later) == 30


def test_purge_records_not_written_for_images_left_alone(alice):
    _deleted(alice, "recent")
    assert services.images_purge() == 0
    assert PurgedImage.objects.count() == 0


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_purge_records_two_purges_at_once_keep_each_image_once(alice, settings):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks and concurrent connections")
    settings.IMAGES_PURGE_AFTER_DAYS = 30
    old = [image_in(Status.DELETED, owner="alice").pk for _ in range(40)]
    Image.objects.filter(pk__in=old).update(deleted_at=timezone.now() - timedelta(days=31))
    barrier, purged = threading.Barrier(2), []

    def purge():
        try:
            barrier.wait()
            purged.append(services.images_purge())
        finally:
            connection.close()

    threads = [threading.Thread(target=purge) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(purged) == 40
    assert sorted(PurgedImage.objects.values_list("image_id", flat=True)) == sorted(old)
