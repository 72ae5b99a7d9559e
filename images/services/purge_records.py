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
        # Plain values: an Image instance would cost a query each for its deferred
        # status (the FSM mixin reads it on load), and a purge needs none of it.
        kept = Image.objects.filter(pk__in=chunk).values(
            "id", "name", "owner", "size", "checksum", "created_at", "deleted_at"
        )
        records = []
        for image in kept:
            image_id = image.pop("id")
            records.append(
                PurgedImage(image_id=image_id, purged_at=now, history=history[image_id], **image)
            )
        written += len(PurgedImage.objects.bulk_create(records))
    return written
