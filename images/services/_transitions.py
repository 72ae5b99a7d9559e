"""The one path for a status change: lock the row, run the model's transition,
save it (compare-and-swap) and write the history row. Every operation module
changes an image's status through `_transition` and nothing else.
"""

from typing import Any

from django_fsm import ConcurrentTransition, can_proceed

from images import events, policy
from images.errors import ImageNotFound, InvalidTransition
from images.models import Image, ImageTransition
from images.policy import Actor


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
    update_fields: list[str] | None = None,
    **kwargs: Any,
) -> None:
    """Run transition `name` on a locked image, save it and record the history row.

    The transition's notifications (events.TRANSITION_EVENTS) go once the transaction
    commits. With `history`, the row is appended there for the caller to bulk-insert in
    the same transaction (the scrubber records hundreds at once), and the caller sends
    the notifications of the batch with events.transition_events. With `update_fields`,
    only those columns are written: a transition that changes nothing else (scrub)
    costs a short UPDATE instead of one of every column."""
    source = image.status
    method = getattr(image, name)
    if not can_proceed(method):
        target = _target_of(method)
        raise InvalidTransition(
            refusal or f"Image status transition from {source} to {target} is not allowed"
        )
    method(**kwargs)
    try:
        image.save(update_fields=update_fields)
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
        events.transition_events([image], name)
    else:
        history.append(row)
