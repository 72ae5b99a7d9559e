"""What `images_purge` keeps of the images it removes: one `PurgedImage` per image,
with its history in compact form, so that an operator can still ask what happened
to an id (`GET /v2/deleted-images/{id}/history`, the admin's purged images)."""

from collections import defaultdict
from datetime import datetime

from images.history import compact
from images.models import Image, ImageTransition, PurgedImage

# Ids per query: well under SQLite's bound-parameter limit, and a bounded memory use
# for a purge of many thousands of records.
CHUNK = 500


def purged_records_write(ids: list, *, now: datetime) -> int:
    """Write a PurgedImage for each image in `ids`, in a few queries per CHUNK images.
    Called inside the purge's transaction, with the rows locked, before they are
    removed: the records and the removal commit together or not at all."""
    written = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        history = defaultdict(list)
        transitions = ImageTransition.objects.filter(image_id__in=chunk).order_by(
            "image_id", "created_at", "id"
        )
        for transition in transitions.iterator(chunk_size=2000):
            history[transition.image_id].append(compact(transition))
        records = [
            PurgedImage(
                image_id=image.pk,
                name=image.name,
                owner=image.owner,
                size=image.size,
                checksum=image.checksum,
                created_at=image.created_at,
                deleted_at=image.deleted_at,
                purged_at=now,
                history=history[image.pk],
            )
            for image in Image.objects.filter(pk__in=chunk).only(
                "id", "name", "owner", "size", "checksum", "created_at", "deleted_at"
            )
        ]
        written += len(PurgedImage.objects.bulk_create(records))
    return written
