"""An image's history as the API shows it: its transitions, oldest first, a page at a
time; and what is kept of it once the image is purged (`PurgedImage`).

Read queries only. Who may read which history is `images.policy`'s answer; the
views find the image (or the purged record) first, then ask here for a page.

A row is the same whether it comes from a live `ImageTransition` or from a purged
record's compact list, including its `id`, so a marker means the same in both.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from images.enums import DELETED_STATUSES
from images.errors import ImageNotFound, InvalidInput
from images.models import Image, ImageTransition, PurgedImage

FIELDS = PurgedImage.HISTORY_FIELDS


@dataclass
class HistoryPage:
    rows: list[dict] = field(default_factory=list)
    # The id of the last row when more rows follow it, else None.
    next_marker: int | None = None


def compact(transition: ImageTransition) -> list:
    """One transition as a purged record keeps it: values in FIELDS order."""
    return [
        transition.id,
        transition.created_at.isoformat(),
        transition.source,
        transition.target,
        transition.operation,
        transition.actor,
        transition.reason,
    ]


def _page(rows: Iterable[dict], *, limit: int) -> HistoryPage:
    """The first `limit` rows; one more is read so that `next` is given only when
    there is a next page."""
    taken = []
    for row in rows:
        if len(taken) == limit:
            return HistoryPage(taken, next_marker=taken[-1]["id"] if taken else None)
        taken.append(row)
    return HistoryPage(taken)


def _live_row(transition: ImageTransition) -> dict:
    return dict(zip(FIELDS, compact(transition), strict=True))


def image_history(image: Image, *, marker: int | None, limit: int) -> HistoryPage:
    """A page of `image`'s transitions after the one with id `marker`, oldest first."""
    rows = ImageTransition.objects.filter(image=image).order_by("created_at", "id")
    if marker is not None:
        after = rows.filter(pk=marker).values_list("created_at", flat=True).first()
        if after is None:
            raise InvalidInput(f"Invalid marker {marker}: not a history entry of this image.")
        rows = rows.filter(created_at__gte=after).exclude(created_at=after, id__lte=marker)
    return _page((_live_row(t) for t in rows[: limit + 1]), limit=limit)


def purged_history(record: PurgedImage, *, marker: int | None, limit: int) -> HistoryPage:
    """A page of a purged image's kept history, as image_history pages a live one."""
    rows = [dict(zip(FIELDS, row, strict=True)) for row in record.history]
    if marker is not None:
        found = [i for i, row in enumerate(rows) if row["id"] == marker]
        if not found:
            raise InvalidInput(f"Invalid marker {marker}: not a history entry of this image.")
        rows = rows[found[0] + 1 :]
    return _page(rows, limit=limit)


def deleted_image_find(image_id) -> Image | PurgedImage:
    """The image if it is still in the table as `pending_delete` or `deleted`, else its
    latest purged record; ImageNotFound for an id never deleted (a live image's history
    is asked at /v2/images/{id}/history, by the rules of that image)."""
    try:
        image = Image.objects.filter(pk=image_id, status__in=DELETED_STATUSES).first()
        record = None if image else PurgedImage.objects.filter(image_id=image_id).first()
    except (ValidationError, ValueError):  # not a UUID: no such image either
        image = record = None
    if image is None and record is None:
        raise ImageNotFound(f"No deleted image found with ID {image_id}")
    return image or record


def summary(found: Image | PurgedImage) -> dict:
    """What the deleted-images answer says of the image beside its history."""
    is_record = isinstance(found, PurgedImage)
    return {
        "id": str(found.image_id if is_record else found.pk),
        "name": found.name,
        "owner": found.owner,
        "size": found.size,
        "checksum": found.checksum,
        "status": "purged" if is_record else found.status,
        "created_at": found.created_at,
        "deleted_at": found.deleted_at,
        "purged_at": found.purged_at if is_record else None,
    }


__all__ = [
    "HistoryPage",
    "compact",
    "deleted_image_find",
    "image_history",
    "purged_history",
    "summary",
]
