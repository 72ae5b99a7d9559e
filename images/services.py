"""Domain operations: the only code that changes an image's status or its bytes.

Each status change is one transaction: lock the row, run the model's transition,
save, write the history row. Storage I/O happens outside those transactions,
because moving gigabytes must not hold a database lock.
"""

import errno
import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import ConcurrentTransition, can_proceed

from images import policy, selectors, storage
from images.enums import SCRUBBER, LocationStatus, MemberStatus, Operation, Status, Visibility
from images.errors import (
    Conflict,
    Forbidden,
    ImageError,
    ImageGone,
    ImageNotFound,
    ImageTooLarge,
    InvalidInput,
    InvalidTransition,
    StoreError,
)
from images.models import (
    Image,
    ImageLocation,
    ImageMember,
    ImageProperty,
    ImageTag,
    ImageTransition,
)
from images.policy import Actor

logger = logging.getLogger(__name__)

EMPTY_MD5 = hashlib.md5(b"").hexdigest()
EMPTY_SHA512 = hashlib.sha512(b"").hexdigest()

# Fields a caller may change with image_update; everything else is derived.
MUTABLE_FIELDS = frozenset(
    {
        "name",
        "visibility",
        "protected",
        "os_hidden",
        "disk_format",
        "container_format",
        "min_disk",
        "min_ram",
        "owner",
    }
)
# Glance allows format changes only before data exists.
FORMAT_CHANGE_STATUSES = frozenset({Status.QUEUED, Status.IMPORTING})


# --- the one path for a status change ------------------------------------------


def _lock(image_id) -> Image:
    """Fetch the row for update; call inside transaction.atomic()."""
    try:
        return Image.objects.select_for_update().get(pk=image_id)
    except Image.DoesNotExist:
        raise ImageNotFound(f"No image found with ID {image_id}") from None


def _target_of(method) -> str:
    meta = method._django_fsm
    target = next(iter(meta.transitions.values())).target
    return getattr(target, "allowed_states", [target])[0]


def _transition(
    image: Image,
    name: str,
    *,
    operation: str,
    actor: Actor,
    reason: str = "",
    refusal: str | None = None,
    history: list[ImageTransition] | None = None,
    **kwargs: Any,
) -> None:
    """Run transition `name` on a locked image, save it and record the history row.

    With `history`, the row is appended there for the caller to bulk-insert in the
    same transaction (the scrubber records hundreds at once)."""
    source = image.status
    method = getattr(image, name)
    if not can_proceed(method):
        target = _target_of(method)
        raise InvalidTransition(
            refusal or f"Image status transition from {source} to {target} is not allowed"
        )
    method(**kwargs)
    try:
        image.save()
    except ConcurrentTransition:
        raise InvalidTransition(
            f"Image {image.id} changed status while it was being {operation}d; try again."
        ) from None
    row = ImageTransition(
        image=image,
        source=source,
        target=image.status,
        operation=operation,
        actor=policy.actor_name(actor),
        reason=reason,
    )
    if history is None:
        row.save(force_insert=True)
    else:
        history.append(row)


# --- create and update -----------------------------------------------------------


def image_create(
    *,
    actor: Actor,
    image_id=None,
    name: str | None = None,
    owner: str | None = None,
    visibility: str = Visibility.SHARED,
    protected: bool = False,
    os_hidden: bool = False,
    disk_format: str | None = None,
    container_format: str | None = None,
    min_disk: int = 0,
    min_ram: int = 0,
    tags: Iterable[str] = (),
    properties: dict[str, str] | None = None,
    size: int | None = None,
    location_url: str | None = None,
) -> Image:
    """Create an image record: `queued`, or straight to `active` when there is no
    data to wait for (size explicitly 0) or it lives elsewhere (an external location).
    """
    if not policy.check_visibility(actor, visibility):
        raise Forbidden("You are not authorized to create public images.")
    if owner is not None and owner != policy.project_of(actor) and not policy.can_set_owner(actor):
        raise Forbidden("You are not permitted to create images owned by another project.")
    if size not in (None, 0):
        raise InvalidInput("Only a size of 0 can be given on create; upload data to set it.")
    if size == 0 and location_url:
        raise InvalidInput("An image cannot be both empty (size 0) and at an external location.")

    fields: dict[str, Any] = {"id": image_id} if image_id is not None else {}
    image = Image(
        **fields,
        name=name,
        owner=owner if owner is not None else policy.project_of(actor),
        visibility=visibility,
        protected=protected,
        os_hidden=os_hidden,
        disk_format=disk_format,
        container_format=container_format,
        min_disk=min_disk,
        min_ram=min_ram,
    )
    operation = Operation.CREATE
    if size == 0:
        image.activate(
            size=0, checksum=EMPTY_MD5, os_hash_algo="sha512", os_hash_value=EMPTY_SHA512
        )
    elif location_url:
        image.activate()
        operation = Operation.ADD_LOCATION
    try:
        with transaction.atomic():
            image.save(force_insert=True)
            if location_url:
                ImageLocation.objects.create(image=image, url=location_url, in_store=False)
            _replace_tags(image, tags)
            _set_properties(image, properties or {})
            ImageTransition.objects.create(
                image=image,
                source="",
                target=image.status,
                operation=operation,
                actor=policy.actor_name(actor),
            )
    except IntegrityError:
        raise Conflict(f"Image with identifier {image.id} already exists!") from None
    return image


# Glance's image_tag_quota and image_property_quota defaults; over them is a 413.
IMAGE_TAG_QUOTA = 128
IMAGE_PROPERTY_QUOTA = 128


def _replace_tags(image: Image, tags: Iterable[str]) -> None:
    wanted = set(tags)
    if len(wanted) > IMAGE_TAG_QUOTA:
        raise ImageTooLarge(f"Maximum number of tags exceeded: an image has {IMAGE_TAG_QUOTA}.")
    image.tags.exclude(value__in=wanted).delete()
    existing = set(image.tags.values_list("value", flat=True))
    ImageTag.objects.bulk_create(
        [ImageTag(image=image, value=value) for value in sorted(wanted - existing)]
    )


def _set_properties(image: Image, properties: dict[str, str]) -> None:
    """Call inside the caller's transaction: going over the quota rolls it all back."""
    for key, value in properties.items():
        ImageProperty.objects.update_or_create(image=image, name=key, defaults={"value": value})
    if properties and image.properties.count() > IMAGE_PROPERTY_QUOTA:
        raise ImageTooLarge(
            f"Maximum number of properties exceeded: an image has {IMAGE_PROPERTY_QUOTA}."
        )


def image_update(
    *,
    image: Image,
    actor: Actor,
    changes: dict[str, Any] | None = None,
    tags: Iterable[str] | None = None,
    properties: dict[str, str] | None = None,
    remove_properties: Iterable[str] = (),
) -> Image:
    """Change an image's mutable metadata; all or nothing."""
    if not policy.can_manage(actor, image):
        raise Forbidden(f"You are not permitted to modify image {image.id}.")
    changes = dict(changes or {})
    unknown = set(changes) - MUTABLE_FIELDS
    if unknown:
        raise Forbidden(f"Attribute '{sorted(unknown)[0]}' is read-only.")
    with transaction.atomic():
        fresh = _lock(image.pk)
        if fresh.status in (Status.PENDING_DELETE, Status.DELETED):
            raise ImageNotFound(f"No image found with ID {image.pk}")
        for key in ("disk_format", "container_format"):
            changed = key in changes and changes[key] != getattr(fresh, key)
            if changed and fresh.status not in FORMAT_CHANGE_STATUSES:
                raise Forbidden(f"Attribute {key} can be only replaced for a queued image.")
        if "visibility" in changes and not policy.check_visibility(actor, changes["visibility"]):
            raise Forbidden("You are not authorized to make images public.")
        owner_changed = "owner" in changes and changes["owner"] != fresh.owner
        if owner_changed and not policy.can_set_owner(actor):
            raise Forbidden("Owner can't be updated by non admin.")
        for key, value in changes.items():
            setattr(fresh, key, value)
        fresh.save(update_fields=[*changes, "updated_at"])
        if tags is not None:
            _replace_tags(fresh, tags)
        removing = set(remove_properties)
        if removing:
            missing = removing - set(
                fresh.properties.filter(name__in=removing).values_list("name", flat=True)
            )
            if missing:
                raise Conflict(f"Property {sorted(missing)[0]} does not exist.")
            fresh.properties.filter(name__in=removing).delete()
        if properties:
            _set_properties(fresh, properties)
        if tags is not None or removing or properties:
            Image.objects.filter(pk=fresh.pk).update(updated_at=timezone.now())
            fresh.refresh_from_db(fields=["updated_at"])
    return fresh


def image_add_tag(*, image: Image, actor: Actor, tag: str) -> None:
    if not policy.can_manage(actor, image):
        raise Forbidden(f"You are not permitted to modify image {image.id}.")
    with transaction.atomic():
        _lock(image.pk)
        if image.tags.filter(value=tag).exists():
            return  # Glance answers a repeat with success
        if image.tags.count() >= IMAGE_TAG_QUOTA:
            raise ImageTooLarge(f"Maximum number of tags exceeded: an image has {IMAGE_TAG_QUOTA}.")
        ImageTag.objects.create(image=image, value=tag)


def image_remove_tag(*, image: Image, actor: Actor, tag: str) -> None:
    if not policy.can_manage(actor, image):
        raise Forbidden(f"You are not permitted to modify image {image.id}.")
    deleted, _ = ImageTag.objects.filter(image=image, value=tag).delete()
    if not deleted:
        raise ImageNotFound(f"Tag {tag} not found on image {image.id}.")


# --- members of shared images ------------------------------------------------------

IMAGE_MEMBER_QUOTA = 128  # Glance's image_member_quota default


def image_member_add(*, image: Image, actor: Actor, member: str) -> ImageMember:
    """Offer a `shared` image to a project (a user name); it starts `pending`."""
    if not policy.can_manage(actor, image):
        raise Forbidden(f"You are not permitted to share image {image.id}.")
    if image.visibility != Visibility.SHARED:
        raise Forbidden(f"Only shared images have members; image {image.id} is {image.visibility}.")
    if not member or len(member) > 255:
        raise InvalidInput("A member must be a project name of 1 to 255 characters.")
    with transaction.atomic():
        _lock(image.pk)
        if image.members.count() >= IMAGE_MEMBER_QUOTA:
            raise ImageTooLarge(f"Maximum number of image members exceeded: {IMAGE_MEMBER_QUOTA}.")
        created = ImageMember.objects.get_or_create(image=image, member=member)[1]
        if not created:
            raise Conflict(f"Member {member} already associated with image {image.id}.")
    return ImageMember.objects.get(image=image, member=member)


def image_member_update(*, image: Image, actor: Actor, member: str, status: str) -> ImageMember:
    """The member (and only the member) accepts or rejects the offer, or resets it."""
    if status not in MemberStatus.values:
        raise InvalidInput(
            f"Invalid status: {status}. It must be one of: {', '.join(MemberStatus.values)}."
        )
    found = image.members.filter(member=member).first()
    if found is None:
        raise ImageNotFound(f"Member {member} not found for image {image.id}.")
    if policy.project_of(actor) != member:
        raise Forbidden("Only the shared member can update the status of a membership.")
    ImageMember.objects.filter(pk=found.pk).update(status=status, updated_at=timezone.now())
    found.refresh_from_db()
    return found


def image_member_remove(*, image: Image, actor: Actor, member: str) -> None:
    if not policy.can_manage(actor, image):
        raise Forbidden(f"You are not permitted to change the members of image {image.id}.")
    deleted, _ = image.members.filter(member=member).delete()
    if not deleted:
        raise ImageNotFound(f"Member {member} not found for image {image.id}.")


# --- upload and download ------------------------------------------------------------


def _upload_limit(owner: str | None) -> tuple[int, str]:
    """The most bytes this upload may bring, and what bounds it."""
    cap = settings.IMAGES_SIZE_CAP
    quota = settings.IMAGES_USER_STORAGE_QUOTA
    if quota:
        remaining = max(quota - selectors.owner_storage_used(owner), 0)
        if remaining < cap:
            return remaining, "quota"
    return cap, "cap"


def _too_large(kind: str, limit: int):
    def error(size: int) -> ImageError:
        if kind == "quota":
            return ImageTooLarge(
                f"Image exceeds the storage quota: The size of the data {size} will exceed "
                f"the limit. {limit} bytes remaining."
            )
        return ImageTooLarge(f"The incoming image is too large: the size cap is {limit} bytes.")

    return error


class _Heartbeat:
    """Tells the janitor the upload is alive, and notices if the image went away."""

    def __init__(self, image_id):
        self.image_id = image_id
        self.interval = min(10.0, settings.IMAGES_UPLOAD_STALE_SECONDS / 4)
        self.last = time.monotonic()

    def __call__(self, received: int) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        alive = Image.objects.filter(pk=self.image_id, status=Status.SAVING).update(
            upload_heartbeat_at=timezone.now()
        )
        if not alive:
            raise ImageGone(
                f"Image {self.image_id} could not be found after upload. "
                "The image may have been deleted during the upload."
            )


def _store_error(exc: BaseException) -> ImageError:
    if isinstance(exc, ImageError):
        return exc
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ImageTooLarge("Image storage media is full: there is no space left for this image.")
    return StoreError(f"The image store failed while writing the data: {exc}")


def image_upload(
    *, image: Image, actor: Actor, stream: storage.Readable, declared_size: int | None = None
) -> Image:
    """Stream data into a queued image: queued → saving → active.

    Any failure takes the single failure path: the partial data is removed, the
    image goes back to `queued` (the client may retry) and the history says why.
    """
    if not policy.can_manage(actor, image):
        raise Forbidden(f"You are not permitted to upload data to image {image.id}.")
    limit, kind = _upload_limit(image.owner)
    if declared_size is not None and declared_size > limit:
        raise _too_large(kind, limit)(declared_size)
    with transaction.atomic():
        _transition(
            _lock(image.pk),
            "begin_upload",
            operation=Operation.UPLOAD,
            actor=actor,
            reason="upload started",
            now=timezone.now(),
        )
    try:
        stored = storage.put(
            image.pk,
            stream,
            declared_size=declared_size,
            limit=limit,
            on_limit=_too_large(kind, limit),
            on_progress=_Heartbeat(image.pk),
        )
    except BaseException as exc:
        error = _store_error(exc)
        _abort_upload(image.pk, actor, reason=error.message)
        if error is exc:
            raise
        raise error from exc
    try:
        with transaction.atomic():
            fresh = _lock(image.pk)
            if fresh.status != Status.SAVING:
                raise ImageGone(
                    f"Image {image.pk} could not be found after upload. "
                    "The image may have been deleted during the upload."
                )
            _transition(
                fresh,
                "finish_upload",
                operation=Operation.UPLOAD,
                actor=actor,
                reason=f"{stored.size} bytes stored",
                size=stored.size,
                checksum=stored.checksum,
                os_hash_algo=stored.os_hash_algo,
                os_hash_value=stored.os_hash_value,
            )
            ImageLocation.objects.create(image=fresh, url=stored.name, in_store=True)
    except BaseException as exc:
        # The bytes are ours and no record points at them: never leave them behind.
        _discard(stored.name)
        if not isinstance(exc, ImageGone):
            _abort_upload(image.pk, actor, reason=f"recording the upload failed: {exc}")
        raise
    return fresh


def _abort_upload(image_id, actor: Actor, *, reason: str) -> None:
    storage.delete_partial(image_id)
    with transaction.atomic():
        try:
            image = _lock(image_id)
        except ImageNotFound:
            return
        if image.status == Status.SAVING:
            _transition(
                image, "abort_upload", operation=Operation.UPLOAD_FAILED, actor=actor, reason=reason
            )


def _discard(name: str) -> None:
    try:
        storage.delete(name)
    except Exception:
        logger.exception("Could not remove unrecorded image data %s (verify_store finds it)", name)


@dataclass(frozen=True)
class ImageData:
    """What a download needs: the bytes (if any), their size and MD5."""

    image: Image
    size: int
    checksum: str | None
    store_name: str | None = None
    external_url: str | None = None

    @property
    def empty(self) -> bool:
        return self.store_name is None and self.external_url is None

    def open(self, start: int = 0, length: int | None = None) -> BinaryIO:
        return storage.open_data(self.store_name, start, length)

    def local_path(self) -> str | None:
        return storage.local_path(self.store_name) if self.store_name else None


def image_download(*, image: Image, actor: Actor) -> ImageData | None:
    """The image's data, or None when it has none (Glance answers 204)."""
    if image.status == Status.DEACTIVATED and not policy.can_read_deactivated_data(actor):
        raise Forbidden(
            "The requested image has been deactivated. Image data download is forbidden."
        )
    if image.status not in (Status.ACTIVE, Status.DEACTIVATED):
        return None
    location = image.locations.filter(status=LocationStatus.ACTIVE).first()
    if location is None:
        if image.size == 0:
            return ImageData(image=image, size=0, checksum=image.checksum)
        raise StoreError(f"Image {image.id} is {image.status} but has no data location.")
    if not location.in_store:
        return ImageData(
            image=image, size=image.size or 0, checksum=image.checksum, external_url=location.url
        )
    if not storage.store().exists(location.url):
        raise StoreError(f"The data of image {image.id} is missing from the store.")
    return ImageData(
        image=image, size=image.size or 0, checksum=image.checksum, store_name=location.url
    )


# --- deactivate, delete, restore -------------------------------------------------------


def image_deactivate(*, image: Image, actor: Actor) -> Image:
    return _toggle_activation(image, actor, "deactivate", Status.DEACTIVATED, Operation.DEACTIVATE)


def image_reactivate(*, image: Image, actor: Actor) -> Image:
    return _toggle_activation(image, actor, "reactivate", Status.ACTIVE, Operation.REACTIVATE)


def _toggle_activation(image: Image, actor: Actor, name: str, target: str, operation: str) -> Image:
    if not policy.can_deactivate(actor, image):
        raise Forbidden(f"You are not permitted to {name} image {image.id}.")
    with transaction.atomic():
        fresh = _lock(image.pk)
        if fresh.status == target:
            return fresh  # Glance answers these repeats with success and changes nothing
        if not can_proceed(getattr(fresh, name)):
            raise Forbidden(f"Not allowed to {name} image in status '{fresh.status}'")
        _transition(fresh, name, operation=operation, actor=actor)
    return fresh


def _delete_target(image: Image, actor: Actor) -> str:
    """The status `image_delete` gives this image now, or the refusal it raises."""
    if not policy.can_delete(actor, image):
        raise Forbidden(f"You are not permitted to delete image {image.pk}.")
    if image.status in (Status.PENDING_DELETE, Status.DELETED):
        raise ImageNotFound(f"No image found with ID {image.pk}")
    if image.protected:
        raise Forbidden(f"Image {image.pk} is protected and cannot be deleted.")
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
    if not policy.can_restore(actor):
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


# --- the scrubber's passes ---------------------------------------------------------------


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
    if not policy.can_scrub(actor):
        raise Forbidden("You are not permitted to scrub images.")
    outcomes = _scrub_batch([image.pk], actor=actor, due_by=due_by)
    if image.pk not in outcomes:
        raise ImageNotFound(f"No image found with ID {image.pk}")
    if outcomes[image.pk] is not None:
        raise outcomes[image.pk]
    return Image.objects.get(pk=image.pk)


# Images the scrubber handles together: one claim, one data pass and one commit of
# their transitions per batch, instead of two transactions and ~10 queries each.
SCRUB_BATCH = 200


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
                            fresh, "scrub", operation=Operation.SCRUB, actor=actor, history=history
                        )
                    except InvalidTransition as exc:
                        outcomes[fresh.pk] = exc
                        continue
                outcomes[fresh.pk] = None
            ImageTransition.objects.bulk_create(history)
    return outcomes


@dataclass
class ScrubReport:
    scrubbed: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    swept: list = field(default_factory=list)
    killed: list = field(default_factory=list)
    purged: int = 0


def images_scrub_due(*, now=None, report: ScrubReport | None = None) -> ScrubReport:
    """Scrub every pending_delete image past its delay, and finish interrupted deletes."""
    now = now or timezone.now()
    report = report or ScrubReport()
    due_by = selectors.scrub_cutoff(now)

    def scrub(batch: list) -> None:
        outcomes = _scrub_batch(batch, actor=SCRUBBER, due_by=due_by)
        for pk in batch:  # the report keeps the due order
            if pk not in outcomes:
                continue
            if outcomes[pk] is None:
                report.scrubbed.append(pk)
            else:
                logger.warning("Scrub of image %s did not finish: %s", pk, outcomes[pk])
                report.failed.append(pk)

    batch: list = []
    due = selectors.images_due_for_scrub(now).values_list("pk", flat=True)
    for pk in due.iterator(chunk_size=SCRUB_BATCH):
        batch.append(pk)
        if len(batch) == SCRUB_BATCH:
            scrub(batch)
            batch = []
    if batch:
        scrub(batch)
    for image in selectors.deleted_images_holding_data():
        if _remove_location_data(image):
            report.swept.append(image.pk)
        else:
            report.failed.append(image.pk)
    return report


def images_kill_stale_uploads(*, now=None, report: ScrubReport | None = None) -> ScrubReport:
    """`saving` images whose upload stopped reporting (its worker died) become `killed`."""
    now = now or timezone.now()
    report = report or ScrubReport()
    for image in selectors.images_with_stale_uploads(now):
        with transaction.atomic():
            fresh = _lock(image.pk)
            if not selectors.images_with_stale_uploads(now).filter(pk=fresh.pk).exists():
                continue
            _transition(
                fresh,
                "kill",
                operation=Operation.KILL,
                actor="scrubber",
                reason=(
                    f"no upload progress for {settings.IMAGES_UPLOAD_STALE_SECONDS} seconds; "
                    "the worker receiving it is gone"
                ),
            )
        storage.delete_partial(fresh.pk)
        # A worker that died after renaming its bytes into place, before recording
        # them, left the whole object under the final name. A killed image never has a
        # location, so those bytes are nobody's.
        _discard(storage.object_name(fresh.pk))
        report.killed.append(fresh.pk)
    return report


def images_purge(*, now=None) -> int:
    """Remove `deleted` records older than IMAGES_PURGE_AFTER_DAYS, for good."""
    now = now or timezone.now()
    ids = list(selectors.images_due_for_purge(now).values_list("pk", flat=True))
    if ids:
        Image.objects.filter(pk__in=ids).delete()
    return len(ids)


def scrubber_pass(*, now=None) -> ScrubReport:
    """One pass of everything the scrubber daemon does."""
    now = now or timezone.now()
    report = images_kill_stale_uploads(now=now)
    images_scrub_due(now=now, report=report)
    report.purged = images_purge(now=now)
    return report


# --- store verification -----------------------------------------------------------------


@dataclass
class StoreReport:
    orphans: list[str] = field(default_factory=list)  # bytes no live image points at
    missing: list = field(default_factory=list)  # live images whose bytes are gone
    corrupt: list = field(default_factory=list)  # bytes that no longer match their hashes
    removed: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.orphans or self.missing or self.corrupt)


def store_verify(*, rehash: bool = False, remove_orphans: bool = False) -> StoreReport:
    """Compare the records with the store: orphans, missing data and (with `rehash`)
    checksum mismatches. With `remove_orphans`, orphaned bytes are removed.

    Bytes count as owned while a location that is not yet `deleted` points at them,
    and a `.partial` file while its image is `saving` (an upload in progress).
    """
    report = StoreReport()
    names = storage.list_names()
    owned = set(
        ImageLocation.objects.filter(in_store=True)
        .exclude(status=LocationStatus.DELETED)
        .values_list("url", flat=True)
    )
    uploading = {
        storage.partial_name(pk)
        for pk in Image.objects.filter(status=Status.SAVING).values_list("pk", flat=True)
    }
    report.orphans = [name for name in names if name not in owned and name not in uploading]

    present = set(names)
    live = ImageLocation.objects.filter(
        in_store=True,
        status__in=[LocationStatus.ACTIVE, LocationStatus.PENDING_DELETE],
        image__status__in=[Status.ACTIVE, Status.DEACTIVATED, Status.PENDING_DELETE],
    ).select_related("image")
    for location in live:
        image = location.image
        if location.url not in present:
            report.missing.append(image.pk)
        elif rehash and storage.hash_object(location.url) != (
            image.checksum,
            image.os_hash_value,
        ):
            report.corrupt.append(image.pk)

    if remove_orphans:
        for name in report.orphans:
            # Re-check just before removing: an upload may have finished meanwhile.
            if (
                not ImageLocation.objects.filter(url=name, in_store=True)
                .exclude(status=LocationStatus.DELETED)
                .exists()
            ):
                storage.delete(name)
                report.removed.append(name)
    return report
