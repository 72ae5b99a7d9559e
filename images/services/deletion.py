"""Delete, restore and scrub: an image's way to `deleted`, and back from
`pending_delete` while its data is still there.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from images import events, policy, selectors, storage
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
from images.services.retention import retained_until, retention_for

# The package's logger, as before the split, so log lines keep saying images.services.
logger = logging.getLogger(__package__)


def _delete_target(image: Image, actor: Actor, *, ask_store: bool = True) -> str:
    """The status `image_delete` gives this image now, or the refusal it raises.
    `ask_store=False` leaves out the store's in-use check (a round trip to Ceph), for
    the re-check under the row lock that follows a full check."""
    if not policy.may(actor, image, Action.DELETE):
        raise Forbidden(f"You are not permitted to delete image {image.pk}.")
    if image.status in (Status.PENDING_DELETE, Status.DELETED):
        raise ImageNotFound(f"No image found with ID {image.pk}")
    if image.protected:
        raise Forbidden(f"Image {image.pk} is protected and cannot be deleted.")
    if ask_store and storage.clones_data():
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


def image_delete(
    *, image: Image, actor: Actor, reason: str = "", now: datetime | None = None
) -> Image:
    """Delete an image: `pending_delete` (data kept, restorable until scrubbed) when
    delayed delete is on and it has data, otherwise `deleted` with its data removed.
    `reason` goes into the history row (a scheduled delete says so); `now` is the
    scrubber pass's moment, so the scrub delay counts from the time it acted for.
    """
    _delete_target(image, actor)
    with transaction.atomic():
        fresh = _lock(image.pk)
        delayed = _delete_target(fresh, actor, ask_store=False) == Status.PENDING_DELETE
        name = "mark_pending_delete" if delayed else "mark_deleted"
        now = now or timezone.now()
        if not delayed:
            # This request removes the data below: the janitor's sweep (on any node)
            # leaves it alone for the lease, and takes over if the request dies.
            fresh.scrub_started_at = now
        # The rules' deadline is fixed here, with the image's owner, tags and
        # visibility as deleted; rule changes later recompute it (services.retention).
        kept = {"retained_until": retained_until(fresh, now)} if delayed else {}
        _transition(
            fresh, name, operation=Operation.DELETE, actor=actor, reason=reason, now=now, **kept
        )
        fresh.locations.filter(status=LocationStatus.ACTIVE).update(
            status=LocationStatus.PENDING_DELETE
        )
    if not delayed:
        storage.delete_partial(fresh.pk)
        if not _remove_location_data(fresh):
            _release(fresh.pk, now)  # the next sweep retries at once
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
        retention = retention_for(image)
        if retention is None:
            retention = timedelta(seconds=settings.IMAGES_SCRUB_DELAY_SECONDS)
        return DeletePreview(image, target, scrub_at=(now or timezone.now()) + retention)
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


def _release(image_id, claimed_at: datetime) -> None:
    """Expire this claim but keep it set: any scrubber retries the image at its next
    pass, and no restore brings back an image whose bytes may be partly gone."""
    Image.objects.filter(pk=image_id, scrub_started_at=claimed_at).update(
        scrub_started_at=claimed_at - claim_lease()
    )


def _finish_delete(image_id, *, now: datetime) -> bool | None:
    """The janitor's sweep of one `deleted` image still holding data (its delete's
    removal failed, or the process died): claim it, remove the bytes. True if they
    went, False if the store failed (retried next pass), None if it is not ours to
    do (another scrubber claimed it within the lease, or nothing is left)."""
    leftovers = selectors.deleted_images_holding_data(now)
    with transaction.atomic():
        image = leftovers.select_for_update(skip_locked=True).filter(pk=image_id).first()
        if image is None:
            return None
        claimed_at = timezone.now()
        Image.objects.filter(pk=image_id).update(scrub_started_at=claimed_at)
    if _remove_location_data(image):
        return True
    _release(image_id, claimed_at)
    return False


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
#
# Several scrubbers may run at once (one per node). An image is theirs to scrub once
# claimed: `scrub_started_at` set in a committed transaction, before any byte goes. A
# claim younger than IMAGES_SCRUB_CLAIM_SECONDS (the lease) belongs to a scrubber at
# work, and the others leave the image alone; an older one was left by a scrubber that
# died, and the next scrubber takes it over. A scrubber renews its claims while it
# works, so a slow store does not let a second scrubber in.


def claim_lease() -> timedelta:
    return timedelta(seconds=settings.IMAGES_SCRUB_CLAIM_SECONDS)


def image_scrub(
    *, image: Image, actor: Actor = "scrubber", due_by: datetime | None = None
) -> Image:
    """Remove a pending_delete image's data, then mark it deleted.

    The claim (`scrub_started_at`) is committed before any byte is removed, so a
    restore can no longer bring back an image whose data may be partly gone. If
    the store fails, the image stays pending_delete and the next run retries; if
    it failed before removing anything, the claim is dropped and the image may
    still be restored. With `due_by`, an image deleted after that time (restored
    and deleted again since it was found) is left alone. An image another scrubber
    claimed within the lease is refused (InvalidTransition): it is being scrubbed.
    """
    if not policy.may(actor, image, Action.SCRUB):
        raise Forbidden("You are not permitted to scrub images.")
    outcomes = _scrub_batch([image.pk], actor=actor, due_by=due_by)
    if image.pk not in outcomes:
        raise ImageNotFound(f"No image found with ID {image.pk}")
    if outcomes[image.pk] is not None:
        raise outcomes[image.pk]
    return Image.objects.get(pk=image.pk)


Outcomes = dict[Any, ImageError | None]


def _scrub_batch(image_ids: list, *, actor: Actor, due_by: datetime | None) -> Outcomes:
    """Scrub these images, each with the steps and outcome `image_scrub` documents.

    Returns {image id: None if scrubbed, else the InvalidTransition or StoreError
    that left it pending_delete}; an image that no longer exists is left out. The
    rows are waited for (a restore holding one is answered, not skipped) and lock in
    id order, so two callers on overlapping batches cannot deadlock.
    """
    outcomes: Outcomes = {}
    with transaction.atomic():
        rows = Image.objects.select_for_update().filter(pk__in=image_ids).order_by("pk")
        claimed, claimed_at = _claim(list(rows), due_by=due_by, outcomes=outcomes)
    return _scrub_claimed(claimed, claimed_at, actor=actor, outcomes=outcomes)


def _claim(
    rows: list[Image],
    *,
    due_by: datetime | None,
    outcomes: Outcomes,
    due_at: datetime | None = None,
):
    """Claim, among these locked rows, the images that may be scrubbed now; call inside
    the transaction that locked them. Returns (claimed images, the claim's time) and
    puts each refusal in `outcomes`. With `due_at` (the scrubber's pass), an image
    whose own scrub time (its retention rule's, or the default delay) is later than
    that is refused: restored and deleted again, or kept longer by a rule changed
    since it was found."""
    claimed_at = timezone.now()
    taken = claimed_at - claim_lease()
    claimed = []
    for fresh in rows:
        if fresh.status != Status.PENDING_DELETE:
            outcomes[fresh.pk] = InvalidTransition(
                f"Image {fresh.pk} is {fresh.status}, not pending_delete."
            )
        elif (due_by is not None and fresh.deleted_at > due_by) or (
            due_at is not None and selectors.scrub_due_at(fresh) > due_at
        ):
            outcomes[fresh.pk] = InvalidTransition(
                f"Image {fresh.pk} is not due for scrubbing yet."
            )
        elif fresh.scrub_started_at is not None and fresh.scrub_started_at >= taken:
            outcomes[fresh.pk] = InvalidTransition(
                f"Image {fresh.pk} is being scrubbed by another scrubber."
            )
        else:
            claimed.append(fresh)
    if claimed:
        Image.objects.filter(pk__in=[fresh.pk for fresh in claimed]).update(
            scrub_started_at=claimed_at
        )
    return claimed, claimed_at


def _scrub_claimed(
    claimed: list[Image], claimed_at: datetime, *, actor: Actor, outcomes: Outcomes
) -> Outcomes:
    """Steps 2 and 3 of a scrub, for images this scrubber has claimed at `claimed_at`
    (committed): their data, then their transitions."""
    if not claimed:
        return outcomes
    # 2. The data, outside any transaction: each image's locations in order, stopping
    #    at its first failure as _remove_location_data does.
    locations: dict[Any, list[ImageLocation]] = {fresh.pk: [] for fresh in claimed}
    for location in ImageLocation.objects.filter(
        image__in=[fresh.pk for fresh in claimed], status=LocationStatus.PENDING_DELETE
    ).order_by("image_id", "id"):
        locations[location.image_id].append(location)
    removed, unclaim, release = [], [], []
    lease = claim_lease().total_seconds()
    renew_at = time.monotonic() + lease / 3
    for index, fresh in enumerate(claimed):
        if time.monotonic() > renew_at:
            claimed_at, lost = _renew(claimed[index:], claimed_at)
            renew_at = time.monotonic() + lease / 3
            for pk in lost:  # our lease ran out and another scrubber took them over
                outcomes[pk] = InvalidTransition(f"Image {pk} is being scrubbed by another one.")
        if fresh.pk in outcomes:
            continue
        for position, location in enumerate(locations[fresh.pk]):
            if not _remove_bytes(location):
                outcomes[fresh.pk] = StoreError(
                    f"The store failed to remove the data of image {fresh.pk}; "
                    "it stays pending_delete."
                )
                # Nothing removed: restorable again. Else the claim stays, so no
                # restore brings the image back without its bytes, but expired, so
                # the next pass of any scrubber retries at once.
                (unclaim if position == 0 else release).append(fresh.pk)
                break
            removed.append(location.pk)
    if removed:
        ImageLocation.objects.filter(pk__in=removed).update(status=LocationStatus.DELETED)
    ours = Image.objects.filter(status=Status.PENDING_DELETE, scrub_started_at=claimed_at)
    if unclaim:
        ours.filter(pk__in=unclaim).update(scrub_started_at=None)
    if release:
        ours.filter(pk__in=release).update(scrub_started_at=claimed_at - claim_lease())

    # 3. The transitions, re-checked under the lock, and their history in one insert.
    #    An image already deleted was scrubbed by a scrubber that took it over: that
    #    one reports it, not this one.
    done = [fresh.pk for fresh in claimed if fresh.pk not in outcomes]
    if done:
        with transaction.atomic():
            history: list[ImageTransition] = []
            scrubbed: list[Image] = []
            for fresh in Image.objects.select_for_update().filter(pk__in=done).order_by("pk"):
                try:
                    _transition(
                        fresh,
                        "scrub",
                        operation=Operation.SCRUB,
                        actor=actor,
                        history=history,
                        update_fields=["status", "updated_at"],
                        refusal=f"Image {fresh.pk} was scrubbed by another scrubber.",
                    )
                except InvalidTransition as exc:
                    outcomes[fresh.pk] = exc
                    continue
                outcomes[fresh.pk] = None
                scrubbed.append(fresh)
            ImageTransition.objects.bulk_create(history)
            events.transition_events(scrubbed, "scrub")
    return outcomes


def _renew(images: list[Image], claimed_at: datetime) -> tuple[datetime, list]:
    """Renew this scrubber's claims on `images` (those it has yet to finish); returns
    the new claim time and the images whose claim is no longer ours."""
    with transaction.atomic():
        ids = [image.pk for image in images]
        mine = list(
            Image.objects.select_for_update()
            .filter(pk__in=ids, scrub_started_at=claimed_at)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        renewed_at = timezone.now()
        Image.objects.filter(pk__in=mine).update(scrub_started_at=renewed_at)
    kept = set(mine)
    return renewed_at, [pk for pk in ids if pk not in kept]
