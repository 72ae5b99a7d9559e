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


# What became of each seeded image, and how often (seeded_registry).
FATES = {
    "active": 55,
    "deactivated": 5,
    "pending_delete": 12,
    "deleted": 15,
    "queued": 10,
    "killed": 3,
}


def seeded_registry(count: int, *, now, owners=("alice", "bob", "carol", "dave", "erin"), seed=16):
    """`count` images with forty days of history behind them (created, uploaded,
    some deactivated, deleted, scrubbed), in a few bulk statements: the admin's
    charts in the browser test and the index benchmark (10,000 images). Every image
    reaches its status through the model's transitions; history rows are dated at
    whole days before `now`, so that a few UPDATEs date them all. Returns the images."""
    import random
    from datetime import timedelta

    from images.enums import Operation as Op
    from images.models import ImageTransition

    rng = random.Random(seed)
    images, moves = [], []
    for n in range(count):
        owner = rng.choices(owners, weights=range(len(owners) * 2, 0, -2))[0]
        image = Image(
            name=f"{owner}-image-{n}", owner=owner, disk_format="qcow2", container_format="bare"
        )
        fate = rng.choices(list(FATES), weights=list(FATES.values()))[0]
        born = rng.randint(0, 40)
        steps = [(born, "", Status.QUEUED, Op.CREATE)]
        if fate != Status.QUEUED:
            image.begin_upload(now=now - timedelta(days=born))
            steps.append((born, Status.QUEUED, Status.SAVING, Op.UPLOAD))
        if fate == Status.KILLED:
            image.kill()
            steps.append((born, Status.SAVING, Status.KILLED, Op.KILL))
        elif fate != Status.QUEUED:
            size = rng.randint(1, 16) * 2 ** rng.randint(24, 30)
            image.finish_upload(**{**ARGS["finish_upload"](), "size": size})
            steps.append((born, Status.SAVING, Status.ACTIVE, Op.UPLOAD))
        later = rng.randint(0, born)
        if fate == Status.DEACTIVATED:
            image.deactivate()
            steps.append((later, Status.ACTIVE, Status.DEACTIVATED, Op.DEACTIVATE))
        if fate in (Status.PENDING_DELETE, Status.DELETED):
            later = min(later, 3) if fate == Status.PENDING_DELETE else later
            image.mark_pending_delete(now=now - timedelta(days=later))
            steps.append((later, Status.ACTIVE, Status.PENDING_DELETE, Op.DELETE))
        if fate == Status.DELETED:
            image.scrub()
            scrubbed = max(later - 1, 0)
            steps.append((scrubbed, Status.PENDING_DELETE, Status.DELETED, Op.SCRUB))
        images.append(image)
        moves.extend((image, *step) for step in steps)
    rows = [
        ImageTransition(image=image, source=source, target=target, operation=op, actor=image.owner)
        for image, _, source, target, op in moves
    ]
    with transaction.atomic():
        Image.objects.bulk_create(images, batch_size=1000)
        ImageTransition.objects.bulk_create(rows, batch_size=1000)
        by_day: dict = {}
        for row, (_, days, *_) in zip(rows, moves, strict=True):
            by_day.setdefault(days, []).append(row.pk)
        for days, ids in by_day.items():
            for start in range(0, len(ids), 900):
                ImageTransition.objects.filter(pk__in=ids[start : start + 900]).update(
                    created_at=now - timedelta(days=days)
                )
    return images
