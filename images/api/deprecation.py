"""Deprecation schedules on the wire: the body of `POST /v2/images/{id}/actions/deprecate`
and the keys an image with a schedule shows.

    POST /v2/images/{id}/actions/deprecate
    {"os_deprecated_at": "2027-01-01T00:00:00Z", "os_obsolete_at": "2027-02-01T00:00:00Z",
     "os_delete_at": "2027-03-01T00:00:00Z", "os_replacement_id": "<image id>"}

Every key may be left out or null; the body is the whole schedule (a key left out is
cleared), so `{}` clears it. The names carry Glance's `os_` prefix for keys that are
not Glance's own, so no client's extra property can take them.
"""

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime

from images.errors import InvalidInput
from images.models import Image
from images.services.deprecation import deprecation_state, deprecation_warning

# Wire name -> image_deprecate's argument.
WIRE_DATES = {
    "os_deprecated_at": "deprecated_at",
    "os_obsolete_at": "obsolete_at",
    "os_delete_at": "delete_at",
}
WIRE_REPLACEMENT = "os_replacement_id"
WIRE_KEYS = (*WIRE_DATES, WIRE_REPLACEMENT)


def _moment(name: str, raw) -> datetime | None:
    if raw is None:
        return None
    moment = None
    if isinstance(raw, str):
        try:
            moment = parse_datetime(raw.strip())
        except ValueError:
            moment = None
    if moment is None:
        raise InvalidInput(f"Invalid time format for {name}: {raw} (ISO 8601 expected).")
    if moment.tzinfo is None:
        raise InvalidInput(f"{name} must say its time zone (e.g. 2027-01-31T00:00:00Z): {raw}")
    return moment.astimezone(UTC)


def schedule_from_body(data) -> dict:
    """image_deprecate's keyword arguments from the action's JSON body."""
    if not isinstance(data, Mapping):
        raise InvalidInput("The deprecation schedule must be a JSON object.")
    unknown = sorted(set(data) - set(WIRE_KEYS))
    if unknown:
        raise InvalidInput(
            f"Unknown key '{unknown[0]}' in a deprecation schedule; "
            f"it takes {', '.join(WIRE_KEYS)}."
        )
    schedule: dict = {arg: _moment(wire, data.get(wire)) for wire, arg in WIRE_DATES.items()}
    replacement = data.get(WIRE_REPLACEMENT)
    if replacement is not None:
        try:
            replacement = uuid.UUID(str(replacement))
        except ValueError:
            raise InvalidInput(f"Invalid {WIRE_REPLACEMENT} value: {replacement}") from None
    schedule["replacement_id"] = replacement
    return schedule


def _iso(value: datetime | None) -> str | None:
    # serializers.isotime, which cannot be imported from here (it imports us).
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def has_schedule(image: Image) -> bool:
    return any(
        value is not None
        for value in (image.deprecated_at, image.obsolete_at, image.delete_at, image.replacement_id)
    )


def deprecation_fields(image: Image) -> dict:
    """The schedule and where the image is in it, for an image that has one. An image
    without one shows none of these keys, so it looks to clients as Glance's do."""
    if not has_schedule(image):
        return {}
    state = deprecation_state(image)
    fields = {
        "deprecation_state": str(state),
        "os_deprecated_at": _iso(image.deprecated_at),
        "os_obsolete_at": _iso(image.obsolete_at),
        "os_delete_at": _iso(image.delete_at),
        "os_replacement_id": str(image.replacement_id) if image.replacement_id else None,
    }
    warning = deprecation_warning(image, state)
    if warning:
        fields["os_deprecation_warning"] = warning
    return fields
