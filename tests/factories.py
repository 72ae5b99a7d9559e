"""Images in any status, reached through the model's own transitions (never by
assigning `status`), then saved once."""

import io
import os

from django.db import transaction
from django.utils import timezone

from images import storage
from images.enums import LocationStatus, Status
from images.models import Image, ImageLocation

# The transitions that lead from a fresh `queued` image to each status.
PATHS = {
    Status.QUEUED: [],
    Status.SAVING: ["begin_upload"],
    Status.ACTIVE: ["begin_upload", "finish_upload"],
    Status.KILLED: ["begin_upload", "kill"],
    Status.UPLOADING: ["stage"],
    Status.IMPORTING: ["stage", "begin_import"],
    Status.DEACTIVATED: ["begin_upload", "finish_upload", "deactivate"],
    Status.PENDING_DELETE: ["begin_upload", "finish_upload", "mark_pending_delete"],
    Status.DELETED: ["mark_deleted"],
}

ARGS = {
    "begin_upload": lambda: {"now": timezone.now()},
    "stage": lambda: {"now": timezone.now()},
    "finish_upload": lambda: {
        "size": 0,
        "checksum": "d41d8cd98f00b204e9800998ecf8427e",
        "os_hash_algo": "sha512",
        "os_hash_value": "0" * 128,
    },
    "finish_import": lambda: ARGS["finish_upload"](),
    "mark_pending_delete": lambda: {"now": timezone.now()},
    "mark_deleted": lambda: {"now": timezone.now()},
}


def image_in(status: str, *, save: bool = True, **fields) -> Image:
    fields.setdefault("disk_format", "raw")
    fields.setdefault("container_format", "bare")
    fields.setdefault("name", f"{status}-image")
    image = Image(**fields)
    for name in PATHS[status]:
        getattr(image, name)(**ARGS.get(name, dict)())
    if save:
        image.save()
    return image


def pending_delete_in_bulk(count: int, *, deleted_at, size: int = 16, owner="alice") -> list:
    """`count` pending_delete images deleted at `deleted_at`, each with `size` bytes of
    its own in the store (written through images.storage, so on whichever store the
    settings name), inserted in a few statements: thousands of images in seconds, for
    the scrubber races and the cluster. Returns their ids."""
    images, locations = [], []
    for _ in range(count):
        image = image_in(Status.QUEUED, save=False, owner=owner, name="doomed")
        image.begin_upload(now=deleted_at)
        stored = storage.put(
            image.id,
            io.BytesIO(os.urandom(size)),
            declared_size=size,
            limit=size,
            on_limit=lambda received: ValueError(f"{received} bytes, more than {size}"),
        )
        image.finish_upload(
            size=stored.size,
            checksum=stored.checksum,
            os_hash_algo=stored.os_hash_algo,
            os_hash_value=stored.os_hash_value,
        )
        image.mark_pending_delete(now=deleted_at)
        images.append(image)
        locations.append(
            ImageLocation(image=image, url=stored.name, status=LocationStatus.PENDING_DELETE)
        )
    with transaction.atomic():
        Image.objects.bulk_create(images, batch_size=1000)
        ImageLocation.objects.bulk_create(locations, batch_size=1000)
    return [image.id for image in images]
