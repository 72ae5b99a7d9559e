"""Creating an image record and changing its metadata: fields, tags, properties."""

import hashlib
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from images import events, policy
from images.enums import Operation, Status, Visibility
from images.errors import Conflict, Forbidden, ImageNotFound, ImageTooLarge, InvalidInput
from images.models import Image, ImageLocation, ImageProperty, ImageTag, ImageTransition
from images.policy import Action, Actor
from images.services._transitions import _lock

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
    if owner is not None and owner != policy.project_of(actor) and not policy.can_set_owner(actor):
        raise Forbidden("You are not permitted to create images owned by another project.")
    owner = owner if owner is not None else policy.project_of(actor)
    if not policy.can_create(actor, owner, visibility):
        raise Forbidden("You are not permitted to create images.")
    if not policy.check_visibility(actor, visibility):
        raise Forbidden(f"You are not authorized to create {visibility} images.")
    _check_disk_format(disk_format)
    if size not in (None, 0):
        raise InvalidInput("Only a size of 0 can be given on create; upload data to set it.")
    if size == 0 and location_url:
        raise InvalidInput("An image cannot be both empty (size 0) and at an external location.")

    fields: dict[str, Any] = {"id": image_id} if image_id is not None else {}
    image = Image(
        **fields,
        name=name,
        owner=owner,
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
            events.image_event("image.create", image)
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


def _check_disk_format(disk_format: str | None) -> None:
    """Operators narrow the disk formats they accept (Glance's [image_format] disk_formats)."""
    if disk_format is not None and disk_format not in settings.IMAGES_DISK_FORMATS:
        raise InvalidInput(
            f"Invalid disk_format '{disk_format}': this registry accepts "
            f"{', '.join(settings.IMAGES_DISK_FORMATS)}."
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
    if not policy.may(actor, image, Action.EDIT):
        raise Forbidden(f"You are not permitted to modify image {image.id}.")
    changes = dict(changes or {})
    unknown = set(changes) - MUTABLE_FIELDS
    if unknown:
        raise Forbidden(f"Attribute '{sorted(unknown)[0]}' is read-only.")
    with transaction.atomic():
        fresh = _lock(image.pk)
        if fresh.status in (Status.PENDING_DELETE, Status.DELETED):
            raise ImageNotFound(f"No image found with ID {image.pk}")
        if "disk_format" in changes:
            _check_disk_format(changes["disk_format"])
        for key in ("disk_format", "container_format"):
            changed = key in changes and changes[key] != getattr(fresh, key)
            if changed and fresh.status not in FORMAT_CHANGE_STATUSES:
                raise Forbidden(f"Attribute {key} can be only replaced for a queued image.")
        visibility = changes.get("visibility")
        if visibility is not None and not policy.check_visibility(actor, visibility, fresh):
            raise Forbidden(f"You are not authorized to make images {visibility}.")
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
        events.image_event("image.update", fresh)
    return fresh


def image_add_tag(*, image: Image, actor: Actor, tag: str) -> None:
    if not policy.may(actor, image, Action.EDIT):
        raise Forbidden(f"You are not permitted to modify image {image.id}.")
    with transaction.atomic():
        _lock(image.pk)
        if image.tags.filter(value=tag).exists():
            return  # Glance answers a repeat with success
        if image.tags.count() >= IMAGE_TAG_QUOTA:
            raise ImageTooLarge(f"Maximum number of tags exceeded: an image has {IMAGE_TAG_QUOTA}.")
        ImageTag.objects.create(image=image, value=tag)
        _tags_changed(image, "image.tag.create", tag)


def image_remove_tag(*, image: Image, actor: Actor, tag: str) -> None:
    if not policy.may(actor, image, Action.EDIT):
        raise Forbidden(f"You are not permitted to modify image {image.id}.")
    with transaction.atomic():
        deleted, _ = ImageTag.objects.filter(image=image, value=tag).delete()
        if not deleted:
            raise ImageNotFound(f"Tag {tag} not found on image {image.id}.")
        _tags_changed(image, "image.tag.delete", tag)


def _tags_changed(image: Image, event_type: str, tag: str) -> None:
    """Glance saves the image after a tag change: image.update, with the new tags;
    then ours, image.tag.create or image.tag.delete, naming the tag."""
    if events.wanted("image.update") or events.wanted(event_type):
        fresh = Image.objects.get(pk=image.pk)
        events.image_event("image.update", fresh)
        events.image_event(event_type, fresh, tag=tag)
