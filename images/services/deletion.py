"""Delete, restore and scrub: an image's way to `deleted`, and back from
`pending_delete` while its data is still there.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from images import policy, storage
from images.enums import LocationStatus, Operation, Status
from images.errors import (
    Conflict,
    Forbidden,
    ImageError,
    ImageNotFound,
    InvalidTransition,
    StoreError,
)
from images.models import Image, ImageLocation, ImageTransition
from images.policy import Action, Actor
from images.rbd_store import StoreInUse
from images.services._transitions import _lock, _transition

# The package's logger, as before the split, so log lines keep saying images.services.
logger = logging.getLogger(__package__)


def _delete_target(image: Image, actor: Actor) -> str:
    """The status `image_delete` gives this image now, or the refusal it raises."""
    if not policy.may(actor, image, Action.DELETE):
        raise Forbidden(f"You are not permitted to delete image {image.pk}.")
    if image.status in (Status.PENDING_DELETE, Status.DELETED):
        raise ImageNotFound(f"No image found with ID {image.pk}")
    if image.protected:
        raise Forbidden(f"Image {image.pk} is protected and cannot be deleted.")
    if storage.clones_data():
        in_store = image.locations.filter(status=LocationStatus.ACTIVE, in_store=True)
        if any(storage.in_use(url) for url in in_store.values_list("url", flat=True)):
            # Glance's answer to InUseByStore: the image and its data stay as they are.
            raise Conflict(
                f"Image {image.pk} could not be deleted because it is in use: The image "
                "cannot be deleted because it is in use through the backend store "
                "outside of Glance."
            )
    if settings.IMAGES_DELAYED_DELETE and can_proceed(image.mark_pending_delete):
        return Status.PENDING_DELETE
    return Status.DELETED


def image_delete(*, image: Image, actor: Actor) -> Image:
    """Delete an image: `pending_delete` (data kept, restorable until scrubbed) when
    delayed delete is on and it has data, otherwise `deleted` with its data removed.
    """
    _delete_target(image, actor)
    with transaction.atomic():
        fresh = _lock(image.pk)
        delayed = _delete_target(fresh, actor) == Status.PENDING_DELETE
        name = "mark_pending_delete" if delayed else "mark_deleted"
        _transition(fresh, name, operation=Operation.DELETE, actor=actor, now=timezone.now())
        fresh.locations.filter(status=LocationStatus.ACTIVE).update(
            status=LocationStatus.PENDING_DELETE
        )
    if not delayed:
        storage.delete_partial(fresh.pk)
        _remove_location_data(fresh)
    return fresh


@dataclass(frozen=True)
class DeletePreview:
    """What `image_delete` would do to an image now, told before it is done."""

    image: Image
    outcome: str  # Status.PENDING_DELETE, Status.DELETED, or "refused"
    reason: str = ""
    scrub_at: datetime | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome != "refused"


def image_delete_preview(
    *, image: Image, actor: Actor, now: datetime | None = None
) -> DeletePreview:
    """Foretell `image_delete` for a confirmation page: kept as pending_delete until
    a time, removed for good, or refused and why. Changes nothing."""
    if image.status in (Status.PENDING_DELETE, Status.DELETED):
        # Clearer on a confirmation page than the API's "No image found".
        return DeletePreview(image, "refused", f"Image {image.pk} is already {image.status}.")
    try:
        target = _delete_target(image, actor)
    except ImageError as refusal:
        return DeletePreview(image, "refused", refusal.message)
    if target == Status.PENDING_DELETE:
        delay = timedelta(seconds=settings.IMAGES_SCRUB_DELAY_SECONDS)
        return DeletePreview(image, target, scrub_at=(now or timezone.now()) + delay)
    return DeletePreview(image, target)


def _remove_bytes(location: ImageLocation) -> bool:
    """Remove the bytes a location points at if they are ours (external data is not);
    a store failure is logged and answered False."""
    if not location.in_store:
        return True
    try:
        storage.delete(location.url)
    except StoreInUse as exc:
        logger.warning("Data %s of image %s kept: %s", location.url, location.image_id, exc)
        return False
    except Exception:
        logger.exception("Removing data %s of image %s failed", location.url, location.image_id)
        return False
    return True


def _remove_location_data(image: Image) -> bool:
    """Remove the bytes behind an image's pending_delete locations. True if all went."""
    for location in image.locations.filter(status=LocationStatus.PENDING_DELETE):
        if not _remove_bytes(location):
            return False
        ImageLocation.objects.filter(pk=location.pk).update(status=LocationStatus.DELETED)
    return True


def image_restore(*, image: Image, actor: Actor) -> Image:
    """Bring a pending_delete image back to the status it had, with everything it had."""
    if not policy.may(actor, image, Action.RESTORE):
        raise Forbidden("You are not permitted to restore images.")
    with transaction.atomic():
        fresh = _lock(image.pk)
        _transition(
            fresh,
            "restore",
            operation=Operation.RESTORE,
            actor=actor,
            refusal=(
                f"Image {fresh.pk} is {fresh.status}, not pending_delete: "
                "only pending_delete images can be restored."
            ),
        )
        fresh.locations.filter(status=LocationStatus.PENDING_DELETE).update(
            status=LocationStatus.ACTIVE
        )
    return fresh


# --- scrub: the data first, then the status; the janitor scrubs in batches ---------------


def image_scrub(
    *, image: Image, actor: Actor = "scrubber", due_by: datetime | None = None
) -> Image:
    """Remove a pending_delete image's data, then mark it deleted.

    The claim (`scrub_started_at`) is committed before any byte is removed, so a
    restore can no longer bring back an image whose data may be partly gone. If
    the store fails, the image stays pending_delete and the next run retries; if
    it failed before removing anything, the claim is dropped and the image may
    still be restored. With `due_by`, an image deleted after that time (restored
    and deleted again since it was found) is left alone.
    """
    if not policy.may(actor, image, Action.SCRUB):
        raise Forbidden("You are not permitted to scrub images.")
    outcomes = _scrub_batch([image.pk], actor=actor, due_by=due_by)
    if image.pk not in outcomes:
        raise ImageNotFound(f"No image found with ID {image.pk}")
    if outcomes[image.pk] is not None:
        raise outcomes[image.pk]
    return Image.objects.get(pk=image.pk)


def _scrub_batch(
    image_ids: list, *, actor: Actor, due_by: datetime | None
) -> dict[Any, ImageError | None]:
    """Scrub these images, each with the steps and outcome `image_scrub` documents.

    Returns {image id: None if scrubbed, else the InvalidTransition or StoreError
    that left it pending_delete}; an image that no longer exists is left out.
    """
    outcomes: dict[Any, ImageError | None] = {}
    # 1. The claim, committed before any byte goes. Rows lock in id order, so two
    #    scrubbers working on overlapping batches cannot deadlock.
    with transaction.atomic():
        claimed = []
        for fresh in Image.objects.select_for_update().filter(pk__in=image_ids).order_by("pk"):
            if fresh.status != Status.PENDING_DELETE:
                outcomes[fresh.pk] = InvalidTransition(
                    f"Image {fresh.pk} is {fresh.status}, not pending_delete."
                )
            elif due_by is not None and fresh.deleted_at > due_by:
                outcomes[fresh.pk] = InvalidTransition(
                    f"Image {fresh.pk} is not due for scrubbing yet."
                )
            else:
                claimed.append(fresh)
        unclaimed = [fresh.pk for fresh in claimed if fresh.scrub_started_at is None]
        if unclaimed:
            Image.objects.filter(pk__in=unclaimed).update(scrub_started_at=timezone.now())
    if not claimed:
        return outcomes

    # 2. The data, outside any transaction: each image's locations in order, stopping
    #    at its first failure as _remove_location_data does.
    locations: dict[Any, list[ImageLocation]] = {fresh.pk: [] for fresh in claimed}
    for location in ImageLocation.objects.filter(
        image__in=[fresh.pk for fresh in claimed], status=LocationStatus.PENDING_DELETE
    ).order_by("image_id", "id"):
        locations[location.image_id].append(location)
    removed, unclaim = [], []
    for fresh in claimed:
        for position, location in enumerate(locations[fresh.pk]):
            if not _remove_bytes(location):
                outcomes[fresh.pk] = StoreError(
                    f"The store failed to remove the data of image {fresh.pk}; "
                    "it stays pending_delete."
                )
                if position == 0:
                    unclaim.append(fresh.pk)  # nothing removed: restorable again
                break
            removed.append(location.pk)
    if removed:
        ImageLocation.objects.filter(pk__in=removed).update(status=LocationStatus.DELETED)
    if unclaim:
        Image.objects.filter(pk__in=unclaim, status=Status.PENDING_DELETE).update(
            scrub_started_at=None
        )

    # 3. The transitions, re-checked under the lock, and their history in one insert.
    done = [fresh.pk for fresh in claimed if fresh.pk not in outcomes]
    if done:
        with transaction.atomic():
            history: list[ImageTransition] = []
            for fresh in Image.objects.select_for_update().filter(pk__in=done).order_by("pk"):
                if fresh.status == Status.PENDING_DELETE:
                    try:
                        _transition(
                            fresh,
                            "scrub",
                            operation=Operation.SCRUB,
                            actor=actor,
                            history=history,
                            update_fields=["status", "updated_at"],
                        )
                    except InvalidTransition as exc:
                        outcomes[fresh.pk] = exc
                        continue
                outcomes[fresh.pk] = None
            ImageTransition.objects.bulk_create(history)
    return outcomes
