"""Glance's list query language: filters, sorting and marker paging.

    GET /v2/images?status=in:active,queued&size_min=1&tag=a&tag=b
                  &created_at=gte:2026-01-01T00:00:00Z&sort=name:asc,size:desc
                  &limit=25&marker=<id of the last image seen>

Any parameter that is not a known one is an exact match on an extra property.
Bad values answer 400 with Glance's messages.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC

from django.core.exceptions import ValidationError
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from images import policy, selectors
from images.enums import ContainerFormat, DiskFormat, MemberStatus, Status, Visibility
from images.errors import InvalidInput
from images.models import Image, ImageProperty, ImageTag
from images.policy import Actor

DEFAULT_LIMIT = 25
MAX_INT = 2**63 - 1
MAX_LIMIT = 1000
SORT_KEYS = (
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
)
NULLABLE_SORT_KEYS = frozenset({"name", "container_format", "disk_format", "size"})
DATE_OPS = {"gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte", "eq": "exact", "neq": "exact"}
LIST_OPS = ("in", "eq")
# Query parameters that are not property filters. `format` is DRF's (?format=api|json).
RESERVED_PARAMS = frozenset(
    {
        "limit",
        "marker",
        "sort_key",
        "sort_dir",
        "sort",
        "format",
        "visibility",
        "member_status",
        "status",
        "name",
        "id",
        "container_format",
        "disk_format",
        "owner",
        "protected",
        "os_hidden",
        "checksum",
        "os_hash_value",
        "size_min",
        "size_max",
        "tag",
        "created_at",
        "updated_at",
        "deprecation",
        "os_deprecated_at",
        "os_obsolete_at",
        "os_delete_at",
    }
)
CHOICES = {
    "status": set(Status.values),
    "container_format": set(ContainerFormat.values),
    "disk_format": set(DiskFormat.values),
}


@dataclass(frozen=True)
class Page:
    images: list
    limit: int
    full: bool
    tags: dict  # image id -> tag values
    properties: dict  # image id -> {name: value}


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise InvalidInput(f"Invalid value '{raw}' for '{name}' filter: must be true or false.")


def _int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"Invalid value '{raw}' for '{name}': must be an integer.") from None
    if value < 0:
        raise InvalidInput(f"Invalid value '{raw}' for '{name}': must be >= 0.")
    if value > MAX_INT:
        # Beyond a 64-bit column: SQLite cannot even bind it as a parameter.
        raise InvalidInput(f"Invalid value '{raw}' for '{name}': must be <= {MAX_INT}.")
    return value


def _values(name: str, raw: str) -> list[str]:
    """`value`, `eq:value` or `in:v1,v2`; names keep colons that are not an operator."""
    op, sep, rest = raw.partition(":")
    if sep and op in LIST_OPS:
        values = [v.strip().strip('"') for v in rest.split(",")] if op == "in" else [rest]
    elif sep and name in CHOICES:
        raise InvalidInput(f"Invalid operator '{op}' for '{name}' filter.")
    else:
        values = [raw]
    allowed = CHOICES.get(name)
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise InvalidInput(f"Invalid {name} value: {bad[0]}")
    return values


def _uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidInput(f"Invalid id value: {raw}") from None


def _date_filter(name: str, raw: str, field: str | None = None) -> Q:
    op, sep, value = raw.partition(":")
    if not sep:
        op, value = "eq", raw
    if op not in DATE_OPS:
        raise InvalidInput(f"Invalid operator '{op}' for '{name}' filter.")
    try:
        moment = parse_datetime(value.replace(" ", "+"))
        if moment is not None and moment.tzinfo is not None:
            # Near year 1 or 9999 an offset pushes the moment out of range in UTC.
            moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        moment = None
    if moment is None:
        raise InvalidInput(f"Invalid time format for {name}: {value}")
    condition = Q(**{f"{field or name}__{DATE_OPS[op]}": moment})
    return ~condition if op == "neq" else condition


def listing(actor: Actor, params) -> QuerySet[Image]:
    """The visible images matching every filter in `params` (a QueryDict)."""
    if "changes-since" in params:
        raise InvalidInput("The 'changes-since' filter is not supported; use updated_at=gt:...")
    visibility = params.get("visibility")
    if visibility is not None and visibility not in {*Visibility.values, "all"}:
        raise InvalidInput(
            f"Invalid visibility value: {visibility}. "
            "It must be one of: community, public, private, shared, all."
        )
    member_status = params.get("member_status", MemberStatus.ACCEPTED)
    if member_status not in {*MemberStatus.values, "all"}:
        raise InvalidInput(
            f"Invalid member_status value: {member_status}. "
            "It must be one of: pending, accepted, rejected, all."
        )
    statuses = _values("status", params["status"]) if "status" in params else None
    wants_deleted = bool(statuses) and any(
        s in (Status.PENDING_DELETE, Status.DELETED) for s in statuses
    )
    images = selectors.images_listed_for(
        actor,
        visibility=visibility,
        member_status=member_status,
        include_deleted=wants_deleted and policy.can_restore(actor),
    )
    if statuses is not None:
        images = images.filter(status__in=statuses)
    for name in ("name", "id", "container_format", "disk_format"):
        if name in params:
            values = _values(name, params[name])
            if name == "id":
                values = [_uuid(v) for v in values]
            images = images.filter(**{f"{name}__in": values})
    for name in ("owner", "checksum", "os_hash_value"):
        if name in params:
            images = images.filter(**{name: params[name]})
    if "protected" in params:
        images = images.filter(protected=_bool("protected", params["protected"]))
    os_hidden = _bool("os_hidden", params["os_hidden"]) if "os_hidden" in params else False
    images = images.filter(os_hidden=os_hidden)
    if "size_min" in params:
        images = images.filter(size__gte=_int("size_min", params["size_min"]))
    if "size_max" in params:
        images = images.filter(size__lte=_int("size_max", params["size_max"]))
    for name in ("created_at", "updated_at"):
        for raw in params.getlist(name):
            images = images.filter(_date_filter(name, raw))
    images = _deprecation_filters(images, params)
    for tag in params.getlist("tag"):
        images = images.filter(Exists(ImageTag.objects.filter(image=OuterRef("pk"), value=tag)))
    for name in params:
        if name in RESERVED_PARAMS:
            continue
        matches = ImageProperty.objects.filter(image=OuterRef("pk"), name=name, value=params[name])
        images = images.filter(Exists(matches))
    return images


def _deprecation_filters(images: QuerySet[Image], params) -> QuerySet[Image]:
    """`deprecation=deprecated` (or `in:deprecated,obsolete`), and the schedule's dates
    compared as created_at is: `os_obsolete_at=lt:2027-01-01T00:00:00Z`."""
    if "deprecation" in params:
        states = selectors.deprecation_conditions(timezone.now())
        op, sep, rest = params["deprecation"].partition(":")
        wanted = rest.split(",") if sep and op == "in" else [params["deprecation"]]
        condition = Q(pk__in=[])
        for value in (v.strip() for v in wanted):
            if value not in states:
                raise InvalidInput(
                    f"Invalid deprecation value: {value}. It must be one of: {', '.join(states)}."
                )
            condition |= states[value]
        images = images.filter(condition)
    for name in ("os_deprecated_at", "os_obsolete_at", "os_delete_at"):
        for raw in params.getlist(name):
            images = images.filter(_date_filter(name, raw, field=name.removeprefix("os_")))
    return images


def sort_order(params) -> list[tuple[str, str]]:
    """[(key, 'asc'|'desc'), ...] from `sort=` or `sort_key`/`sort_dir`, with tie-breakers."""
    keys = params.getlist("sort_key")
    dirs = params.getlist("sort_dir")
    order: list[tuple[str, str]] = []
    if "sort" in params:
        if keys or dirs:
            raise InvalidInput(
                "The 'sort' parameter cannot be combined with 'sort_key' or 'sort_dir'."
            )
        for item in params["sort"].split(","):
            key, _, direction = item.strip().partition(":")
            order.append((key, direction or "desc"))
    else:
        if dirs and len(dirs) not in (1, len(keys)):
            raise InvalidInput("The number of sort_dir and sort_key values does not match.")
        if len(dirs) == 1:
            dirs = dirs * max(len(keys), 1)
        order = [(key, dirs[i] if dirs else "desc") for i, key in enumerate(keys)]
        if not keys and dirs:
            order = [("created_at", dirs[0])]
    for key, direction in order:
        if key not in SORT_KEYS:
            raise InvalidInput(
                f"Invalid sort key: {key}. It must be one of: {', '.join(SORT_KEYS)}."
            )
        if direction not in ("asc", "desc"):
            raise InvalidInput(f"Invalid sort direction: {direction}. It must be asc or desc.")
    seen = {key for key, _ in order}
    tie_direction = order[0][1] if order else "desc"
    for key in ("created_at", "id"):
        if key not in seen:
            order.append((key, tie_direction))
    return order


def _order_by(order):
    """NULL sorts as the smallest value, in both directions, so keyset paging agrees.

    Only nullable keys say so: a plain order on the others (created_at, id) is what
    image_created_idx holds, so PostgreSQL reads a page straight from the index."""
    terms = []
    for key, direction in order:
        if key not in NULLABLE_SORT_KEYS:
            terms.append(F(key).asc() if direction == "asc" else F(key).desc())
        elif direction == "asc":
            terms.append(F(key).asc(nulls_first=True))
        else:
            terms.append(F(key).desc(nulls_last=True))
    return terms


def _after(marker: Image, order) -> Q:
    """Rows strictly after `marker` in `order` (keyset paging, NULL smallest)."""
    result = Q(pk__in=[])
    equal_so_far = Q()
    for key, direction in order:
        value = getattr(marker, key)
        if direction == "asc":
            beyond = Q(**{f"{key}__isnull": False}) if value is None else Q(**{f"{key}__gt": value})
        elif value is None:
            beyond = Q(pk__in=[])
        else:
            beyond = Q(**{f"{key}__lt": value})
            if key in NULLABLE_SORT_KEYS:
                beyond |= Q(**{f"{key}__isnull": True})
        result |= equal_so_far & beyond
        same = Q(**{f"{key}__isnull": True}) if value is None else Q(**{key: value})
        equal_so_far &= same
    return result


def page(images: QuerySet[Image], params) -> Page:
    """One page of `images`: sorted, after the marker, at most `limit` long."""
    limit = min(_int("limit", params["limit"]), MAX_LIMIT) if "limit" in params else DEFAULT_LIMIT
    order = sort_order(params)
    if "marker" in params:
        marker_id = params["marker"]
        try:
            marker = images.get(pk=marker_id)
        except (Image.DoesNotExist, ValidationError, ValueError, TypeError):
            raise InvalidInput(f"No image found with ID {marker_id}") from None
        images = images.filter(_after(marker, order))
    rows = list(images.order_by(*_order_by(order))[:limit])
    tags, properties = selectors.image_tags_and_properties([image.pk for image in rows])
    return Page(
        images=rows,
        limit=limit,
        full=len(rows) == limit and limit > 0,
        tags=tags,
        properties=properties,
    )
