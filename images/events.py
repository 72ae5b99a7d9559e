"""Notifications, as Glance emits them (glance/notifier.py): the event names, when
each one fires and the payloads of `format_image_notification`,
`format_image_member_notification` and `format_task_notification`.

The services call these functions inside the transaction that makes the change: the
payload is built there, from the state being committed, and handed to the bus
(images/event_bus.py) by `transaction.on_commit`, so a change that is rolled back is
never announced. With the `noop` driver (the default) nothing is built at all.

Beyond Glance, our own transitions are announced in its style, with the image
payload: `image.restore` (pending_delete back to active/deactivated), `image.scrub`
(the scrubber removed the data; the image is deleted), `image.kill` (the janitor
gave up on an upload whose worker died), and `image.tag.create`/`image.tag.delete`
(after the image.update Glance sends for a tag, with the `tag` named).
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from images import event_bus, policy
from images.models import Image, ImageMember, ImageTask
from images.policy import Actor

INFO = "INFO"
ERROR = "ERROR"

# What a transition announces, in Glance's order. Glance saves an image once when
# an upload starts (image.update, saving) and once when it ends (image.update,
# active), and its data proxy sends image.prepare before the bytes and
# image.upload and image.activate after them. Deactivate, reactivate and the
# steps of an import are image_repo.save() calls there: image.update.
TRANSITION_EVENTS: dict[str, tuple[str, ...]] = {
    "begin_upload": ("image.update", "image.prepare"),
    "finish_upload": ("image.upload", "image.activate", "image.update"),
    "abort_upload": ("image.update",),
    "stage": ("image.update",),
    "begin_import": ("image.update",),
    "finish_import": ("image.upload", "image.activate", "image.update"),
    "abort_import": ("image.update",),
    "deactivate": ("image.update",),
    "reactivate": ("image.update",),
    "mark_pending_delete": ("image.delete",),
    "mark_deleted": ("image.delete",),
    "restore": ("image.restore",),
    "scrub": ("image.scrub",),
    "kill": ("image.kill",),
}
# Glance's _format_import_properties, sent with image.prepare and image.upload.
IMPORT_EVENTS = frozenset({"image.prepare", "image.upload"})
DELETE_EVENTS = frozenset({"image.delete", "image.scrub"})


def isotime(value: datetime | None = None) -> str:
    """glance.common.timeutils.isotime: seconds, "Z"; now when there is no time."""
    value = value or timezone.now()
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_payload(image: Image) -> dict[str, Any]:
    """format_image_notification: never the locations (they may hold credentials)."""
    return {
        "id": str(image.pk),
        "name": image.name,
        "status": image.status,
        "created_at": isotime(image.created_at),
        "updated_at": isotime(image.updated_at),
        "min_disk": image.min_disk,
        "min_ram": image.min_ram,
        "protected": image.protected,
        "checksum": image.checksum,
        "owner": image.owner,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "is_public": image.visibility == "public",
        "visibility": image.visibility,
        "properties": {prop.name: prop.value for prop in image.properties.all()},
        "tags": sorted(tag.value for tag in image.tags.all()),
        "deleted": False,
        "deleted_at": None,
    }


def member_payload(member: ImageMember) -> dict[str, Any]:
    """format_image_member_notification."""
    return {
        "image_id": str(member.image_id),
        "member_id": member.member,
        "status": member.status,
        "created_at": isotime(member.created_at),
        "updated_at": isotime(member.updated_at),
        "deleted": False,
        "deleted_at": None,
    }


def task_payload(task: ImageTask) -> dict[str, Any]:
    """format_task_notification: never the input (it may hold credentials)."""
    return {
        "id": str(task.pk),
        "type": task.type,
        "status": task.status,
        "result": None,
        "owner": task.owner,
        "message": None,
        "expires_at": isotime(task.expires_at) if task.expires_at else None,
        "created_at": isotime(task.created_at),
        "updated_at": isotime(task.updated_at),
        "deleted": False,
        "deleted_at": None,
    }


def _import_properties(image: Image) -> dict[str, list[str]]:
    found = {prop.name: prop.value for prop in image.properties.all()}
    return {
        key: [store for store in found.get(key, "").split(",") if store]
        for key in ("os_glance_importing_to_stores", "os_glance_failed_import")
    }


def notify(event_type: str, payload: Any, priority: str = INFO) -> None:
    """Send one event once the current transaction commits (at once outside one)."""
    if not wanted(event_type):
        return
    bus = event_bus.bus()
    transaction.on_commit(lambda: bus.put(event_type, payload, priority))


def wanted(event_type: str) -> bool:
    """False with the noop driver, and for Glance's disabled_notifications: an event
    type, or a group it belongs to ("image", "image.member", "task")."""
    if not event_bus.enabled():
        return False
    return not any(
        event_type == off or event_type.startswith(f"{off}.")
        for off in settings.IMAGES_DISABLED_NOTIFICATIONS
    )


def image_event(event_type: str, image: Image, **extra: Any) -> None:
    if not wanted(event_type):
        return
    payload = image_payload(image)
    if event_type in IMPORT_EVENTS:
        payload.update(_import_properties(image))
    if event_type in DELETE_EVENTS:
        payload.update(deleted=True, deleted_at=isotime(image.deleted_at))
    payload.update(extra)
    notify(event_type, payload)


def transition_events(images: Sequence[Image], name: str) -> None:
    """What transition `name` announces, for images that have just made it; their
    tags and properties are fetched in two queries however many there are (the
    scrubber's batches)."""
    names = [event for event in TRANSITION_EVENTS.get(name, ()) if wanted(event)]
    if not names or not images:
        return
    if len(images) > 1:
        # Cached on the instances, so only on the scrubber's own batch: a caller's
        # image may have its tags or properties changed after its transition.
        prefetch_related_objects(list(images), "tags", "properties")
    for image in images:
        for event_type in names:
            image_event(event_type, image)


def upload_failed(image: Image, message: str) -> None:
    """Glance sends image.upload at ERROR, with the reason as the whole payload."""
    if wanted("image.upload"):
        notify(
            "image.upload", f"Failed to upload image data for image {image.pk}: {message}", ERROR
        )


def member_event(event_type: str, member: ImageMember, **extra: Any) -> None:
    if wanted(event_type):
        notify(event_type, {**member_payload(member), **extra})


def member_removed(members: Iterable[ImageMember]) -> None:
    if not wanted("image.member.delete"):
        return
    for member in members:
        member_event("image.member.delete", member, deleted=True, deleted_at=isotime())


def task_event(event_type: str, task: ImageTask) -> None:
    if wanted(event_type):
        notify(event_type, task_payload(task))


def image_sent(image: Image, actor: Actor, *, bytes_sent: int, expected: int) -> None:
    """image.send after a download: INFO when all the bytes went, else ERROR."""
    if not wanted("image.send"):
        return
    user_id = getattr(actor, "user_id", None) or policy.actor_name(actor)
    payload = {
        "bytes_sent": bytes_sent,
        "image_id": str(image.pk),
        "owner_id": image.owner,
        "receiver_tenant_id": policy.project_of(actor),
        "receiver_user_id": user_id,
    }
    notify("image.send", payload, INFO if bytes_sent == expected else ERROR)
