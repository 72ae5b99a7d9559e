"""Images in any status, reached through the model's own transitions (never by
assigning `status`), then saved once."""

import hashlib
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
    "migrate": lambda: {"to": "killed"},
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
    its own in the store, inserted in a few statements: thousands of images in
    seconds, for the scrubber races and the cluster. On a filesystem store the files
    are written directly; on another store through images.storage, as uploads are.
    Returns their ids."""
    images, locations = [], []
    for _ in range(count):
        image = image_in(Status.QUEUED, save=False, owner=owner, name="doomed")
        image.begin_upload(now=deleted_at)
        data = os.urandom(size)
        name = _stored_as_is(image, data)
        image.finish_upload(
            size=size,
            checksum=hashlib.md5(data).hexdigest(),
            os_hash_algo="sha512",
            os_hash_value=hashlib.sha512(data).hexdigest(),
        )
        image.mark_pending_delete(now=deleted_at)
        images.append(image)
        locations.append(ImageLocation(image=image, url=name, status=LocationStatus.PENDING_DELETE))
    with transaction.atomic():
        Image.objects.bulk_create(images, batch_size=1000)
        ImageLocation.objects.bulk_create(locations, batch_size=1000)
    return [image.id for image in images]


def _stored_as_is(image: Image, data: bytes) -> str:
    """The image's bytes put in the store; returns the name its location records."""
    path = storage.local_path(storage.object_name(image.id))
    if path is None:
        return storage.put(
            image.id,
            io.BytesIO(data),
            declared_size=len(data),
            limit=len(data),
            on_limit=lambda received: ValueError(f"{received} bytes, more than {len(data)}"),
        ).name
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(data)
    return storage.object_name(image.id)


def seeded_history(image: Image, moves: list[tuple]) -> None:
    """History rows for `image` at the given times: (when, source, target, operation).
    The log's `created_at` is set on insert, so the rows are dated afterwards: a
    history of days past for the admin's charts without waiting for it."""
    from images.models import ImageTransition

    for when, source, target, operation in moves:
        row = ImageTransition.objects.create(
            image=image, source=source, target=target, operation=operation, actor="seed"
        )
        ImageTransition.objects.filter(pk=row.pk).update(created_at=when)
