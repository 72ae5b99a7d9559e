"""The admin index's numbers: what the registry held each day of the last 30, what
came and went, what the scrubber will take and who holds the bytes.

A handful of aggregate queries whatever the number of images: today's counts per
status, and the history rows of the window grouped by (day, source, target,
operation). The days before today are reconstructed by walking back from today's
counts and undoing each day's transitions, so no query runs per image or per day.

Bytes are each image's recorded `size` (an image counts its current size on every
day it held a status): the history records moves, not sizes. Purged images take
their history with them, so a purge in the window lowers the `deleted` line back
to the days before it.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Case, Count, IntegerField, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from images import selectors
from images.enums import Operation, Status
from images.models import Image, ImageTransition

DAYS = 30
TOP_OWNERS = 10
SCRUB_DAYS = 30  # the scrub timeline's horizon; later ones share one "later" bar
HOLDING_DATA = [Status.ACTIVE, Status.DEACTIVATED, Status.PENDING_DELETE]
UPLOADS = [Operation.UPLOAD, Operation.IMPORT]


@dataclass
class Daily:
    """Per-day values of named series, `days` oldest first."""

    days: list[date]
    series: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Dashboard:
    counts: Daily  # images per status at the end of each day
    bytes: Daily  # bytes per status at the end of each day
    activity: Daily  # uploads, deletions, scrubs per day
    activity_bytes: Daily  # bytes uploaded, deleted per day
    scrubs: list[tuple[str, int, int]]  # (day label, images, bytes) due that day
    owners: list[tuple[str | None, int, int]]  # (owner, bytes, images), most bytes first


def dashboard(now: datetime | None = None) -> Dashboard:
    now = now or timezone.now()
    today = timezone.localdate(now)
    days = [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    moves = _moves_since(days[0])
    counts, sizes = _status_history(days, moves)
    activity, activity_bytes = _activity(days, moves)
    return Dashboard(
        counts=counts,
        bytes=sizes,
        activity=activity,
        activity_bytes=activity_bytes,
        scrubs=scrub_timeline(today),
        owners=top_owners(),
    )


def _moves_since(first: date) -> list[dict]:
    """The window's history rows, grouped: one row per (day, source, target,
    operation) with how many images moved and their bytes. One query."""
    starts = [
        timezone.make_aware(datetime.combine(first + timedelta(days=n), time.min))
        for n in range(DAYS)
    ]
    # The day of a row by comparing it with the days' starts, newest first, rather
    # than TruncDate: on SQLite that is a Python call per row (5x slower at 30,000).
    day = Case(
        *[
            When(created_at__gte=start, then=Value(n))
            for n, start in reversed(list(enumerate(starts)))
        ],
        output_field=IntegerField(),
    )
    rows = (
        ImageTransition.objects.filter(created_at__gte=starts[0])
        .annotate(day=day)
        .order_by()
        .values("day", "source", "target", "operation")
        .annotate(n=Count("id"), size=Coalesce(Sum("image__size"), 0))
    )
    return [{**row, "day": first + timedelta(days=row["day"])} for row in rows]


def _status_history(days: list[date], moves: list[dict]) -> tuple[Daily, Daily]:
    """Start from today's counts (one query) and undo each day's moves, newest first:
    the state at the end of day d-1 is the state at the end of day d without d's moves."""
    current = (
        Image.objects.order_by()
        .values("status")
        .annotate(n=Count("pk"), size=Coalesce(Sum("size"), 0))
    )
    count = defaultdict(int, {row["status"]: row["n"] for row in current})
    size = defaultdict(int, {row["status"]: row["size"] for row in current})
    by_day = defaultdict(list)
    for move in moves:
        by_day[move["day"]].append(move)
    counts = {status: [0] * len(days) for status in Status.values}
    sizes = {status: [0] * len(days) for status in Status.values}
    for index in range(len(days) - 1, -1, -1):
        for status in Status.values:
            counts[status][index] = max(count[status], 0)
            sizes[status][index] = max(size[status], 0)
        for move in by_day[days[index]]:
            count[move["target"]] -= move["n"]
            size[move["target"]] -= move["size"]
            if move["source"]:  # empty for a creation: the image did not exist before
                count[move["source"]] += move["n"]
                size[move["source"]] += move["size"]
    return Daily(days, counts), Daily(days, sizes)


def _activity(days: list[date], moves: list[dict]) -> tuple[Daily, Daily]:
    index = {day: n for n, day in enumerate(days)}
    names = ("uploads", "deletions", "scrubs")
    counts = {name: [0] * len(days) for name in names}
    sizes = {name: [0] * len(days) for name in names}
    for move in moves:
        name = _activity_of(move)
        if name and move["day"] in index:
            counts[name][index[move["day"]]] += move["n"]
            sizes[name][index[move["day"]]] += move["size"]
    return Daily(days, counts), Daily(days, sizes)


def _activity_of(move: dict) -> str | None:
    if move["operation"] in UPLOADS and move["target"] == Status.ACTIVE:
        return "uploads"
    if move["operation"] == Operation.DELETE:
        return "deletions"
    if move["operation"] == Operation.SCRUB:
        return "scrubs"
    return None


def scrub_timeline(today: date) -> list[tuple[str, int, int]]:
    """pending_delete images by the day the scrubber may take them: overdue ones
    count today, those past the horizon share one "later" bar. One query: the due
    time is selectors.with_scrub_due's (a retention rule's deadline, else the
    default delay after the delete), computed by the database."""
    horizon = today + timedelta(days=SCRUB_DAYS - 1)
    counts: dict[date | None, list[int]] = defaultdict(lambda: [0, 0])
    binned = selectors.with_scrub_due(
        Image.objects.filter(status=Status.PENDING_DELETE, deleted_at__isnull=False)
    ).values_list("scrub_due", "size")
    last = today
    for due, size in binned.iterator(chunk_size=2000):
        day = max(timezone.localdate(due), today)
        key = day if day <= horizon else None
        last = max(last, day) if key else last
        counts[key][0] += 1
        counts[key][1] += size or 0
    timeline = []
    day = today
    while day <= last:
        timeline.append((day.isoformat(), *counts[day]))
        day += timedelta(days=1)
    if None in counts:
        timeline.append(("later", *counts[None]))
    return timeline


def top_owners(limit: int = TOP_OWNERS) -> list[tuple[str | None, int, int]]:
    """Owners by the bytes their images hold in the store. One query."""
    rows = (
        Image.objects.filter(status__in=HOLDING_DATA)
        .order_by()
        .values("owner")
        .annotate(size=Coalesce(Sum("size"), 0), n=Count("pk"))
        .filter(size__gt=0)
        .order_by("-size", "owner")[:limit]
    )
    return [(row["owner"], row["size"], row["n"]) for row in rows]
