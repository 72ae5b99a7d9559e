"""Read queries. Nothing here changes a row."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import (
    CharField,
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import Coalesce

from images import policy
from images.enums import DELETED_STATUSES, LocationStatus, MemberStatus, Status, Visibility
from images.errors import ImageNotFound
from images.models import Image, ImageLocation, ImageMember, ImageProperty, ImageTag, ImageTask
from images.policy import Actor


def images_visible_to(
    actor: Actor, *, include_deleted: bool = False, include_scrubbed: bool = False
) -> QuerySet[Image]:
    """Images the actor may read. A shared image is readable by its members whatever
    their answer to the offer, as in Glance (they need it to answer; only lists wait
    for an acceptance). `pending_delete` ones (with `include_deleted`) only for those
    who may restore them; `deleted` ones (with `include_scrubbed` too) only so that a
    restore can tell them it came too late; otherwise they are gone."""
    live = _readable_by(
        actor,
        Image.objects.exclude(status__in=DELETED_STATUSES),
        member_statuses=MemberStatus.values,
        community=True,
    )
    if include_deleted and policy.can_restore(actor):
        # The recycle bin is theirs to see whole, whoever owns an entry.
        binned = [Status.PENDING_DELETE, *([Status.DELETED] if include_scrubbed else [])]
        return Image.objects.filter(Q(status__in=binned) | Q(pk__in=live.values("pk")))
    return live


def _readable_by(
    actor: Actor, images: QuerySet[Image], *, member_statuses: list[str], community: bool
) -> QuerySet[Image]:
    """`images` narrowed to those the actor may read: their own, public ones, shared
    ones they are a member of (with one of `member_statuses`) and, with `community`,
    community ones. Staff who see all images keep them all."""
    if policy.sees_all_images(actor):
        return images
    project = policy.project_of(actor)
    offered = ImageMember.objects.filter(member=project, status__in=member_statuses)
    owner, visibility_of = "owner", "visibility"
    if connection.vendor == "sqlite":
        # Without ANALYZE statistics SQLite answers this OR of indexed terms by
        # collecting every visible row through each index and sorting them all
        # (72 ms for a page of 25 at 100,000 images). With the terms kept out of
        # index use it walks image_created_idx in list order and stops after the
        # page (0.1 ms); at worst, when almost nothing is visible, it reads the
        # whole index (27 ms at 100,000).
        images = images.alias(_owner=_NotIndexed("owner"), _visibility=_NotIndexed("visibility"))
        owner, visibility_of = "_owner", "_visibility"
    readable = (
        Q(**{owner: project})
        | Q(**{visibility_of: Visibility.PUBLIC})
        | Q(**{visibility_of: Visibility.SHARED}, pk__in=offered.values("image"))
    )
    if community:
        readable |= Q(**{visibility_of: Visibility.COMMUNITY})
    return images.filter(readable)


def image_get_visible(
    actor: Actor, image_id, *, include_deleted: bool = False, include_scrubbed: bool = False
) -> Image:
    """The image, or ImageNotFound: one the actor may not see does not exist for them."""
    try:
        visible = images_visible_to(
            actor, include_deleted=include_deleted, include_scrubbed=include_scrubbed
        )
        image = visible.get(pk=image_id)
    except (Image.DoesNotExist, ValidationError, ValueError):
        raise ImageNotFound(f"No image found with ID {image_id}") from None
    if not policy.can_read(actor, image):
        raise ImageNotFound(f"No image found with ID {image_id}")
    return image


def scrub_due_at(image: Image) -> datetime | None:
    """When the scrubber removes a pending_delete image: the end of its retention
    rule's period if one matched, else IMAGES_SCRUB_DELAY_SECONDS after the delete."""
    if image.status != Status.PENDING_DELETE or image.deleted_at is None:
        return None
    if image.retained_until is not None:
        return image.retained_until
    return image.deleted_at + timedelta(seconds=settings.IMAGES_SCRUB_DELAY_SECONDS)


def with_scrub_due(images: QuerySet[Image]) -> QuerySet[Image]:
    """`images` annotated with `scrub_due`, the time scrub_due_at tells, for ordering a
    page of the recycle bin soonest first (the scrubber's due query does not need it)."""
    delay = timedelta(seconds=settings.IMAGES_SCRUB_DELAY_SECONDS)
    by_default = ExpressionWrapper(F("deleted_at") + delay, output_field=DateTimeField())
    return images.annotate(scrub_due=Coalesce("retained_until", by_default))


def scrub_cutoff(now: datetime) -> datetime:
    """Images no retention rule keeps, deleted at or before this time, are due for
    scrubbing."""
    return now - timedelta(seconds=settings.IMAGES_SCRUB_DELAY_SECONDS)


def unclaimed_for_scrub(now: datetime) -> Q:
    """No scrubber is at work on the image: never claimed, or the claim is older than
    IMAGES_SCRUB_CLAIM_SECONDS (its scrubber died, or failed and let go)."""
    lease_start = now - timedelta(seconds=settings.IMAGES_SCRUB_CLAIM_SECONDS)
    return Q(scrub_started_at__isnull=True) | Q(scrub_started_at__lt=lease_start)


def images_due_for_scrub(
    now: datetime, *, after: Image | None = None, by_rule: bool = False
) -> QuerySet[Image]:
    """pending_delete images past their delay that no scrubber is at work on, in scrub
    order; with `after`, those that come after that image (a pass's next batch).

    Two sets, asked one after the other, each an index range of
    image_status_retained_idx in its own order, so that a pass reads the due rows
    only however many images rules keep: without `by_rule`, those no rule keeps,
    IMAGES_SCRUB_DELAY_SECONDS after their delete (deleted_at order); with it, those
    whose rule's retention has ended (retained_until order)."""
    due = Image.objects.filter(unclaimed_for_scrub(now), status=Status.PENDING_DELETE)
    if by_rule:
        key, due = "retained_until", due.filter(retained_until__lte=now)
    else:
        key = "deleted_at"
        due = due.filter(retained_until__isnull=True, deleted_at__lte=scrub_cutoff(now))
    if after is not None:
        value = getattr(after, key)
        due = due.filter(Q(**{f"{key}__gt": value}) | Q(**{key: value, "id__gt": after.id}))
    return due.order_by(key, "id")


def deleted_images_holding_data(now: datetime | None = None) -> QuerySet[Image]:
    """Deleted images whose data removal failed or was interrupted; with `now`, only
    those nobody is removing (see unclaimed_for_scrub)."""
    leftover = ImageLocation.objects.filter(
        image=OuterRef("pk"), status=LocationStatus.PENDING_DELETE
    )
    images = Image.objects.filter(status=Status.DELETED).filter(Exists(leftover))
    return images if now is None else images.filter(unclaimed_for_scrub(now))


def image_active_locations(image_ids: list) -> dict:
    """Each image's active locations in their order, for a page in one query."""
    found: dict = {pk: [] for pk in image_ids}
    rows = ImageLocation.objects.filter(image_id__in=image_ids, status=LocationStatus.ACTIVE)
    for row in rows.order_by("id"):
        found[row.image_id].append(row)
    return found


def images_with_stale_uploads(now: datetime) -> QuerySet[Image]:
    cutoff = now - timedelta(seconds=settings.IMAGES_UPLOAD_STALE_SECONDS)
    stale = Q(upload_heartbeat_at__lt=cutoff)
    never_reported = Q(upload_heartbeat_at__isnull=True, updated_at__lt=cutoff)
    return Image.objects.filter(status=Status.SAVING).filter(stale | never_reported)


def images_killed_since(cutoff: datetime) -> QuerySet[Image]:
    return Image.objects.filter(status=Status.KILLED, updated_at__gte=cutoff)


def images_due_for_purge(now: datetime) -> QuerySet[Image]:
    cutoff = now - timedelta(days=settings.IMAGES_PURGE_AFTER_DAYS)
    return Image.objects.filter(status=Status.DELETED, deleted_at__lte=cutoff).exclude(
        Exists(
            ImageLocation.objects.filter(image=OuterRef("pk"), status=LocationStatus.PENDING_DELETE)
        )
    )


def owner_storage_used(owner: str | None) -> int:
    """Bytes counted against the owner's quota (as Glance: live images only)."""
    used = (
        Image.objects.filter(owner=owner)
        .exclude(status__in=[Status.KILLED, *DELETED_STATUSES])
        .aggregate(total=Sum("size"))["total"]
    )
    return used or 0


class _NotIndexed(Func):
    """`+column` on SQLite: the same value, but one the query planner will not look
    up through an index (SQLite's documented way to steer a plan)."""

    template = "+%(expressions)s"
    output_field = CharField()

    def __init__(self, field: str):
        super().__init__(F(field))


def images_listed_for(
    actor: Actor,
    *,
    visibility: str | None = None,
    member_status: str = MemberStatus.ACCEPTED,
    include_deleted: bool = False,
) -> QuerySet[Image]:
    """The images a list shows the actor, as Glance's list does.

    Without a visibility filter: their own, public ones and shared ones they are a
    member of (with `member_status`; "all" for any); community images only when
    asked for (visibility=community or all). Staff who see all images see them all.
    `killed` images are never listed; deleted ones only for those who may restore.
    """
    images = Image.objects.exclude(status=Status.KILLED)
    binned = include_deleted and policy.can_restore(actor)
    if not binned:
        images = images.exclude(status__in=DELETED_STATUSES)
    if visibility not in (None, "all"):
        images = images.filter(visibility=visibility)
    statuses = MemberStatus.values if member_status == "all" else [member_status]
    listed = _readable_by(actor, images, member_statuses=statuses, community=visibility is not None)
    if binned and not policy.sees_all_images(actor):
        # As in images_visible_to: the recycle bin is its keepers' to see whole,
        # whoever owns an entry (a Keystone image_recovery holder is no admin).
        return images.filter(Q(status__in=DELETED_STATUSES) | Q(pk__in=listed.values("pk")))
    return listed


@dataclass(frozen=True)
class ImageStats:
    """The registry at a glance, for the admin's front page."""

    counts: dict[str, int]  # status -> images
    bytes_stored: int  # data held in the store (active, deactivated, pending_delete)
    awaiting_scrub: int
    next_scrub_at: datetime | None


def image_stats() -> ImageStats:
    """Four aggregate queries, whatever the number of images."""
    counts = dict(Image.objects.order_by().values_list("status").annotate(n=Count("pk")))
    holding_data = [Status.ACTIVE, Status.DEACTIVATED, Status.PENDING_DELETE]
    stored = Image.objects.filter(status__in=holding_data).aggregate(total=Sum("size"))["total"]
    binned = Image.objects.filter(status=Status.PENDING_DELETE, deleted_at__isnull=False)
    oldest = (
        binned.filter(retained_until__isnull=True)
        .order_by("deleted_at")
        .values_list("deleted_at", flat=True)
        .first()
    )
    delay = timedelta(seconds=settings.IMAGES_SCRUB_DELAY_SECONDS)
    by_rule = (
        binned.filter(retained_until__isnull=False)
        .order_by("retained_until")
        .values_list("retained_until", flat=True)
        .first()
    )
    soonest = [due for due in (oldest + delay if oldest else None, by_rule) if due is not None]
    return ImageStats(
        counts={status: counts.get(status, 0) for status in Status.values},
        bytes_stored=stored or 0,
        awaiting_scrub=counts.get(Status.PENDING_DELETE, 0),
        next_scrub_at=min(soonest, default=None),
    )


def image_members_visible_to(actor: Actor, image: Image) -> QuerySet[ImageMember]:
    """The owner (and staff) see every member; a member sees only their own entry."""
    if policy.can_manage(actor, image):
        return image.members.all()
    return image.members.filter(member=policy.project_of(actor))


def image_tags_and_properties(image_ids: list) -> tuple[dict, dict]:
    """Tags ({id: [value]}) and extra properties ({id: {name: value}}) of many images,
    in two plain queries: cheaper than prefetching model rows for a page of 1,000."""
    tags: dict = {pk: [] for pk in image_ids}
    properties: dict = {pk: {} for pk in image_ids}
    rows = ImageTag.objects.filter(image_id__in=image_ids).order_by("image_id", "value")
    for image_id, value in rows.values_list("image_id", "value"):
        tags[image_id].append(value)
    rows = ImageProperty.objects.filter(image_id__in=image_ids).order_by("image_id", "name")
    for image_id, name, value in rows.values_list("image_id", "name", "value"):
        properties[image_id][name] = value
    return tags, properties


def tasks_visible_to(actor: Actor) -> QuerySet[ImageTask]:
    """Task records: a project's own, and all of them for those who see all images."""
    tasks = ImageTask.objects.all()
    if policy.sees_all_images(actor):
        return tasks
    return tasks.filter(owner=policy.project_of(actor), owner__isnull=False)


# --- deprecation schedules (images.services.deprecation) ---------------------------


def deprecation_conditions(now: datetime) -> dict[str, Q]:
    """Each deprecation state as a condition at `now` (deprecation_state's rules), and
    `scheduled`: a step of the schedule still to come."""
    obsolete = Q(obsolete_at__lte=now) | Q(delete_at__lte=now)
    return {
        "obsolete": obsolete,
        "deprecated": Q(deprecated_at__lte=now) & ~obsolete,
        "active": ~Q(deprecated_at__lte=now) & ~obsolete,
        "scheduled": Q(deprecated_at__gt=now) | Q(obsolete_at__gt=now) | Q(delete_at__gt=now),
    }


def images_with_deprecation_due(now: datetime) -> QuerySet[Image]:
    """Live images with a step of their schedule passed and not yet recorded."""
    deprecated = Q(deprecated_at__lte=now, deprecation_recorded="")
    obsolete = (Q(obsolete_at__lte=now) | Q(delete_at__lte=now)) & ~Q(
        deprecation_recorded="obsolete"
    )
    return Image.objects.exclude(status__in=DELETED_STATUSES).filter(deprecated | obsolete)


def images_due_for_scheduled_delete(now: datetime) -> QuerySet[Image]:
    return (
        Image.objects.exclude(status__in=DELETED_STATUSES)
        .filter(delete_at__lte=now)
        .order_by("delete_at", "id")
    )


@dataclass(frozen=True)
class ScheduledEvent:
    when: datetime
    step: str  # "deprecated", "obsolete" or "deleted"
    image: Image
    overdue: bool = False  # a delete whose date passed but did not happen (protected)


def deprecation_upcoming(now: datetime, *, limit: int = 20) -> list[ScheduledEvent]:
    """The next scheduled steps of live images, soonest first, with the deletes that
    are overdue (refused, e.g. a protected image) before them."""
    live = Image.objects.exclude(status__in=DELETED_STATUSES)
    found = [
        ScheduledEvent(image.delete_at, "deleted", image, overdue=True)
        for image in live.filter(delete_at__lte=now).order_by("delete_at")[:limit]
    ]
    for name, step in (
        ("deprecated_at", "deprecated"),
        ("obsolete_at", "obsolete"),
        ("delete_at", "deleted"),
    ):
        rows = live.filter(**{f"{name}__gt": now}).order_by(name, "id")[:limit]
        found += [ScheduledEvent(getattr(image, name), step, image) for image in rows]
    found.sort(key=lambda event: (not event.overdue, event.when))
    return found[:limit]
