"""Scheduled deprecation, as GCE's `deprecate`: an image's dates and its replacement.

    deprecated_at  from then it is listed with a warning; still usable
    obsolete_at    from then new use is refused: downloads answer 410 naming the
                   replacement, except for those who may use obsolete images
    delete_at      the scrubber deletes it then, through image_delete: with delayed
                   delete on it goes to pending_delete and stays restorable

`image_deprecate` sets or clears a schedule; `deprecation_state` says where an image
is in it at a moment; `images_deprecation_due`, one of the scrubber's passes, records
each date passing (a history row with source == target, and an event) exactly once,
and deletes what is due.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

from django.db import transaction
from django.utils import timezone

from images import events, policy, selectors
from images.enums import DELETED_STATUSES, SCRUBBER, DeprecationState, Operation
from images.errors import Forbidden, ImageError, ImageNotFound, ImageObsolete, InvalidInput
from images.models import Image, ImageTransition
from images.policy import Actor
from images.services._transitions import _lock
from images.services.deletion import image_delete

logger = logging.getLogger(__package__)

# The schedule's fields, in the order their dates must come.
DATE_FIELDS = ("deprecated_at", "obsolete_at", "delete_at")
SCHEDULE_FIELDS = (*DATE_FIELDS, "replacement_id")
# Recorded steps in order: an image's `deprecation_recorded` is the last one written.
STEPS = (DeprecationState.ACTIVE, DeprecationState.DEPRECATED, DeprecationState.OBSOLETE)
STEP_OPERATION = {
    DeprecationState.DEPRECATED: Operation.DEPRECATE,
    DeprecationState.OBSOLETE: Operation.OBSOLETE,
}
STEP_EVENT = {
    DeprecationState.DEPRECATED: "image.deprecate",
    DeprecationState.OBSOLETE: "image.obsolete",
}


def _passed(moment: datetime | None, now: datetime) -> bool:
    return moment is not None and moment <= now


def deprecation_state(image: Image, now: datetime | None = None) -> str:
    """active, deprecated or obsolete at `now`. A passed delete_at makes an image
    still waiting for the scrubber obsolete even without an obsolete_at: it is
    already as good as gone."""
    now = now or timezone.now()
    if _passed(image.obsolete_at, now) or _passed(image.delete_at, now):
        return DeprecationState.OBSOLETE
    if _passed(image.deprecated_at, now):
        return DeprecationState.DEPRECATED
    return DeprecationState.ACTIVE


def deprecation_warning(image: Image, state: str) -> str | None:
    """What a list shows beside a deprecated or obsolete image."""
    if state == DeprecationState.ACTIVE:
        return None
    use = f"; use {image.replacement_id} instead" if image.replacement_id else ""
    return f"Image {image.pk} is {state}{use}."


def obsolete_refusal(image: Image) -> str:
    """The 410's message: it names the replacement so that clients can move on."""
    if image.replacement_id:
        return f"Image {image.pk} is obsolete; its replacement is image {image.replacement_id}."
    return f"Image {image.pk} is obsolete and has no replacement."


def check_not_obsolete(image: Image, actor: Actor, now: datetime | None = None) -> None:
    """Refuse new use of an obsolete image (ImageObsolete, a 410) unless the actor
    may still use it (policy.can_use_obsolete: admins)."""
    obsolete = deprecation_state(image, now) == DeprecationState.OBSOLETE
    if obsolete and not policy.can_use_obsolete(actor):
        raise ImageObsolete(obsolete_refusal(image), replacement_id=image.replacement_id)


def _check_schedule(
    image: Image, actor: Actor, dates: dict[str, datetime | None], replacement_id
) -> None:
    given = [(name, dates[name]) for name in DATE_FIELDS if dates[name] is not None]
    for (earlier, first), (later, second) in pairwise(given):
        if second < first:
            raise InvalidInput(f"{later} ({second.isoformat()}) must not be before {earlier}.")
    if replacement_id is None:
        return
    if str(replacement_id) == str(image.pk):
        raise InvalidInput("An image cannot be its own replacement.")
    try:
        # Visible to the one setting it: a replacement users cannot read helps nobody,
        # and naming an image they cannot see must not tell them it exists.
        replacement = selectors.image_get_visible(actor, replacement_id)
    except ImageNotFound:
        raise InvalidInput(f"Replacement image {replacement_id} does not exist.") from None
    if replacement.status in DELETED_STATUSES:
        raise InvalidInput(f"Replacement image {replacement_id} does not exist.")


def image_deprecate(
    *,
    image: Image,
    actor: Actor,
    deprecated_at: datetime | None = None,
    obsolete_at: datetime | None = None,
    delete_at: datetime | None = None,
    replacement_id=None,
    now: datetime | None = None,
) -> Image:
    """Set the image's deprecation schedule (all None clears it).

    Dates may lie in the past: the step takes effect at once and the scrubber's
    next pass records it. A step already recorded stays recorded as long as the new
    schedule still has it passed, so changing a date does not repeat its history row.
    """
    if not policy.can_deprecate(actor, image):
        raise Forbidden(f"You are not permitted to deprecate image {image.pk}.")
    dates = {"deprecated_at": deprecated_at, "obsolete_at": obsolete_at, "delete_at": delete_at}
    for name, value in dates.items():
        if value is not None and timezone.is_naive(value):
            raise InvalidInput(f"{name} must say its time zone (e.g. 2027-01-31T00:00:00Z).")
    _check_schedule(image, actor, dates, replacement_id)
    with transaction.atomic():
        fresh = _lock(image.pk)
        if fresh.status in DELETED_STATUSES:
            raise ImageNotFound(f"No image found with ID {image.pk}")
        for name, value in dates.items():
            setattr(fresh, name, value)
        fresh.replacement_id = replacement_id
        reached = STEPS.index(deprecation_state(fresh, now))
        recorded = STEPS.index(fresh.deprecation_recorded or DeprecationState.ACTIVE)
        kept = min(reached, recorded)
        fresh.deprecation_recorded = "" if kept == 0 else STEPS[kept]
        fresh.save(update_fields=[*SCHEDULE_FIELDS, "deprecation_recorded", "updated_at"])
        events.image_event("image.update", fresh)
    return fresh


@dataclass
class DeprecationReport:
    recorded: list = field(default_factory=list)  # (image id, step) written now
    deleted: list = field(default_factory=list)  # image ids deleted by schedule
    failed: list = field(default_factory=list)  # (image id, why) not deleted


def _record_steps(fresh: Image, now: datetime) -> list[str]:
    """Write the rows and events of the steps that have passed and are not yet
    recorded, in order; the caller holds the row lock."""
    reached = STEPS.index(deprecation_state(fresh, now))
    recorded = STEPS.index(fresh.deprecation_recorded or DeprecationState.ACTIVE)
    written = []
    for step in STEPS[recorded + 1 : reached + 1]:
        if step == DeprecationState.DEPRECATED and fresh.deprecated_at is None:
            continue  # made obsolete without being deprecated first: one step only
        passed = fresh.deprecated_at if step == DeprecationState.DEPRECATED else fresh.obsolete_at
        use = f"; replacement {fresh.replacement_id}" if fresh.replacement_id else ""
        ImageTransition.objects.create(
            image=fresh,
            source=fresh.status,
            target=fresh.status,
            operation=STEP_OPERATION[step],
            actor=SCRUBBER,
            reason=f"scheduled: {step} since {events.isotime(passed or fresh.delete_at)}{use}",
        )
        events.image_event(
            STEP_EVENT[step],
            fresh,
            deprecation_state=str(step),
            replacement_id=str(fresh.replacement_id) if fresh.replacement_id else None,
        )
        written.append(str(step))
    if reached > recorded:
        Image.objects.filter(pk=fresh.pk).update(deprecation_recorded=STEPS[reached])
    return written


def images_deprecation_due(*, now: datetime | None = None) -> DeprecationReport:
    """The scrubber's deprecation pass: record the steps whose dates have passed,
    then delete the images whose delete_at has. Each image is taken with SKIP LOCKED
    and checked again under its lock, so of two scrubbers one records each step."""
    now = now or timezone.now()
    report = DeprecationReport()
    for pk in selectors.images_with_deprecation_due(now).values_list("pk", flat=True):
        with transaction.atomic():
            fresh = selectors.images_with_deprecation_due(now).select_for_update(skip_locked=True)
            fresh = fresh.filter(pk=pk).first()
            if fresh is None:
                continue
            report.recorded += [(pk, step) for step in _record_steps(fresh, now)]
    for image in selectors.images_due_for_scheduled_delete(now):
        reason = f"scheduled: delete_at {events.isotime(image.delete_at)} passed"
        try:
            deleted = image_delete(image=image, actor=SCRUBBER, reason=reason, now=now)
        except ImageError as refusal:
            # A protected image stays until someone unprotects it or moves its date;
            # the admin's upcoming list shows it overdue meanwhile.
            logger.warning("Scheduled delete of image %s refused: %s", image.pk, refusal)
            report.failed.append((image.pk, refusal.message))
            continue
        # Its date is spent: a restore must bring the image back for good, not
        # hand it to the next pass to delete again.
        Image.objects.filter(pk=deleted.pk).update(delete_at=None)
        report.deleted.append(deleted.pk)
    return report
