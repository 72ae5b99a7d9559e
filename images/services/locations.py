"""External locations: an image whose bytes are at an http(s) URL elsewhere.

Glance's rules (glance/api/v2/images.py, `_do_add_locations` and its neighbours):

- A queued image given a location becomes active at once: queued → active, never
  saving (DESIGN.md's lifecycle). Its size is what the remote end declares, as
  Glance asks the store; a location without a declared, non-zero size is invalid.
- Through PATCH, locations change only while IMAGES_SHOW_MULTIPLE_LOCATIONS is on
  (403 otherwise: hidden locations are not edited blind); add and replace on queued
  or active images, remove on active ones, never the last one (OSSN-0065: an owner
  who could empty an active image's locations could then give it other bytes under
  the same id). Replacing the list of an image that has locations may change their
  metadata and order only, not their URLs.
- The locations API (2.17, `POST /v2/images/{id}/locations`) adds one to a queued
  image whatever the switch. Glance runs it as a task that hashes the remote data;
  here it is the PATCH add, done before the answer, with no hashing.
- `validation_data` (checksum, os_hash_algo, os_hash_value) becomes the image's
  hashes. As in Glance's PATCH it is *not* checked against the remote bytes: that
  would mean reading the whole image inside the request. The caller vouches for it;
  an active image's hashes never change (other values are a 409).

Each operation probes the new URLs (outside any transaction: it is network I/O),
then applies everything in one transaction on the locked row, all or nothing.
"""

import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from images import events, policy, remote, storage
from images.enums import LocationStatus, Operation, Status
from images.errors import Conflict, Forbidden, ImageNotFound, InvalidInput
from images.ingest import HASH_ALGO
from images.models import Image, ImageLocation
from images.policy import Actor
from images.services._transitions import _lock, _transition
from images.services.deletion import _remove_location_data

logger = logging.getLogger(__package__)

HASH_FIELDS = ("checksum", "os_hash_algo", "os_hash_value")
# Glance's sizes of an MD5 and a SHA-512 digest, in hex digits.
HEX_LENGTH = {"checksum": 32, "os_hash_value": 128}


@dataclass(frozen=True)
class LocationSpec:
    """A location as a client sends it: its URL, metadata and validation data."""

    url: str
    metadata: dict = field(default_factory=dict)
    validation_data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LocationChange:
    """One PATCH operation on /locations: add (at `position`, "-" or a number),
    replace (the whole list) or remove (at `position`)."""

    op: str
    position: str | None = None
    locations: tuple[LocationSpec, ...] = ()


def shown_url(location: ImageLocation) -> str:
    """A location's URL as clients see it (and send it back in a replace): an external
    one as given; our own bytes in Glance's form for the store (file://, rbd://), else
    their object name in the store."""
    if not location.in_store:
        return location.url
    return storage.location_url(location.url) or location.url


def locations_shown_to(actor: Actor, image: Image, locations: list[ImageLocation]) -> list:
    """The part of an image's active `locations` the actor may see: none without the
    right to read them, nor of a deactivated image to those who may not read its data
    (Glance hides those from non-admins)."""
    if not policy.can_read_locations(actor, image):
        return []
    if image.status == Status.DEACTIVATED and not policy.can_read_deactivated_data(actor):
        return []
    return locations


def image_locations_fetch(*, image: Image, actor: Actor) -> list[ImageLocation]:
    """The locations API's list (2.17), whatever the switch: Glance's
    `fetch_image_location` rule, the service role's by default."""
    if not policy.can_act_on_locations(actor, image, "fetch_image_location"):
        raise Forbidden(f"You are not permitted to read the locations of image {image.pk}.")
    return _active_rows(image)


# --- the operations -----------------------------------------------------------------


def image_locations_check(*, image: Image, actor: Actor, changes: list[LocationChange]) -> None:
    """Refuse a PATCH's location operations now if they would be refused (rights, the
    switch, statuses, positions, validation data, URLs the operator's rules refuse),
    with no network I/O: the API asks before it applies the rest of the patch."""
    verbs = {"add": "add", "replace": "update", "remove": "remove"}
    for change in changes:
        rule = "delete_image_location" if change.op == "remove" else "set_image_location"
        if not policy.can_act_on_locations(actor, image, rule):
            raise Forbidden(f"You are not permitted to change the locations of image {image.pk}.")
        if not settings.IMAGES_SHOW_MULTIPLE_LOCATIONS:
            raise Forbidden(
                f"It's not allowed to {verbs[change.op]} locations if locations are invisible."
            )
    _plan(image, _active_rows(image), changes, sizes=None)
    for url in _new_urls(image, changes):
        remote.check_url(url)


def image_locations_change(*, image: Image, actor: Actor, changes: list[LocationChange]) -> Image:
    """Apply a PATCH's location operations in order, all or nothing."""
    image_locations_check(image=image, actor=actor, changes=changes)
    return _apply(image, actor, changes)


def image_location_add(
    *, image: Image, actor: Actor, url: str, validation_data: dict | None = None
) -> Image:
    """The locations API (2.17): give a queued image its data at `url`."""
    if image.status != Status.QUEUED:
        raise Conflict(f"It's not allowed to add locations if image status is {image.status}.")
    if not policy.can_act_on_locations(actor, image, "add_image_location"):
        raise Forbidden(f"You are not permitted to add a location to image {image.pk}.")
    validation_data = dict(validation_data or {})
    _check_hashes(validation_data, error=InvalidInput)
    spec = LocationSpec(url=url, validation_data=validation_data)
    return _apply(image, actor, [LocationChange("add", "-", (spec,))])


# --- the plan: what the changes amount to, checked on a working copy ---------------------


@dataclass
class _Plan:
    state: str  # the image's status once the changes so far are applied
    hashes: dict
    size: int | None
    # The final list: an existing row (its metadata possibly new) or a new location.
    entries: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    added_hosts: list = field(default_factory=list)


@dataclass
class _Entry:
    url: str  # as shown
    metadata: dict
    row: ImageLocation | None = None


def _position(path_pos: str | None, count: int, *, adding: bool) -> int | None:
    """Glance's `_get_locations_op_pos`: "-" is the end, a number a place in the list."""
    if path_pos == "-":
        return count if adding else count - 1 if count else None
    if path_pos is None or not path_pos.isdigit():
        return None
    pos = int(path_pos)
    return pos if (pos <= count if adding else pos < count) else None


def _plan(image: Image, rows: list[ImageLocation], changes, sizes: dict | None) -> _Plan:
    """Run the changes on a working copy of the image. With `sizes` (the probed URLs'
    sizes) the plan is final; without, only the checks that need no network run."""
    plan = _Plan(
        state=image.status,
        hashes={name: getattr(image, name) for name in HASH_FIELDS},
        size=image.size,
        entries=[_Entry(shown_url(row), row.metadata, row) for row in rows],
    )
    for change in changes:
        if change.op == "remove":
            _plan_remove(plan, change)
            continue
        verb = "add" if change.op == "add" else "replace"
        if plan.state not in (Status.QUEUED, Status.ACTIVE):
            raise Conflict(f"It's not allowed to {verb} locations if image status is {plan.state}.")
        _plan_hashes(plan, change.locations)
        if change.op == "add":
            _plan_add(plan, image, change)
        else:
            _plan_replace(plan, change)
        for spec in change.locations:
            if sizes is not None and spec.url in sizes:
                _plan_size(plan, image, spec.url, sizes[spec.url])
        if plan.state == Status.QUEUED and plan.entries:
            plan.state = Status.ACTIVE
    return plan


def _plan_remove(plan: _Plan, change: LocationChange) -> None:
    if plan.state != Status.ACTIVE:
        raise Conflict(f"It's not allowed to remove locations if image status is {plan.state}.")
    if len(plan.entries) == 1:
        # OSSN-0065: with no location left, other bytes could be given the same image.
        raise Forbidden("Cannot remove last location in the image.")
    pos = _position(change.position, len(plan.entries), adding=False)
    if pos is None:
        raise InvalidInput("Invalid position for removing a location.")
    entry = plan.entries.pop(pos)
    if entry.row is not None:
        plan.removed.append(entry.row)


def _duplicate(entries: list[_Entry], spec: LocationSpec) -> bool:
    # Glance counts a location twice when both its URL and its metadata match.
    return any(e.url == spec.url and e.metadata == spec.metadata for e in entries)


def _plan_add(plan: _Plan, image: Image, change: LocationChange) -> None:
    (spec,) = change.locations
    if plan.state == Status.ACTIVE and not plan.entries:
        # An active image without locations is an empty one: its (no) data is final.
        raise Conflict(f"Image {image.pk} is active without data; a location cannot add it.")
    pos = _position(change.position, len(plan.entries), adding=True)
    if pos is None:
        raise InvalidInput("Invalid position for adding a location.")
    if _duplicate(plan.entries, spec):
        raise InvalidInput(f"The location {spec.url} already exists")
    plan.entries.insert(pos, _Entry(spec.url, spec.metadata))
    plan.added_hosts.append(urlsplit(spec.url).hostname or "")


def _plan_replace(plan: _Plan, change: LocationChange) -> None:
    specs = change.locations
    if not specs:
        raise Forbidden("Cannot set locations to empty list.")
    for i, spec in enumerate(specs):
        if _duplicate(list(map(_spec_entry, specs[:i])), spec):
            raise InvalidInput(f"The location {spec.url} already exists")
    current = sorted(e.url for e in plan.entries)
    if current and current != sorted(s.url for s in specs):
        # Glance: the URLs of an image's locations are final; only metadata and order change.
        raise InvalidInput(f"Original locations is not empty: {', '.join(current)}")
    by_url = {e.url: e for e in plan.entries}
    plan.entries = [
        _Entry(s.url, s.metadata, by_url[s.url].row if s.url in by_url else None) for s in specs
    ]
    plan.added_hosts += [urlsplit(s.url).hostname or "" for s in specs if s.url not in by_url]


def _spec_entry(spec: LocationSpec) -> _Entry:
    return _Entry(spec.url, spec.metadata)


def _plan_size(plan: _Plan, image: Image, url: str, size: int) -> None:
    if plan.state == Status.QUEUED and plan.size is None:
        plan.size = size
    elif plan.size is not None and size != plan.size:
        # Not in Glance: every location of an image holds the same bytes, so at least
        # the same number of them.
        raise InvalidInput(f"Invalid location {url}: it holds {size} bytes, the image {plan.size}.")


def _check_hashes(data: dict, *, error: type[Exception]) -> None:
    """The form of validation data: MD5 and SHA-512 hex digests, our algorithm."""
    algo = data.get("os_hash_algo")
    if algo is not None and algo != HASH_ALGO:
        raise error(f"os_hash_algo must be {HASH_ALGO}, not {algo}")
    for name, length in HEX_LENGTH.items():
        value = data.get(name)
        if value is None:
            continue
        try:
            digest = bytes.fromhex(value)
        except ValueError:
            raise error(f"{name} ({value}) is not a valid hexadecimal value") from None
        if len(digest) * 2 != length:
            raise error(f"{name} ({value}) is not the correct size (should be {length} hex digits)")


def _plan_hashes(plan: _Plan, specs) -> None:
    """Glance's `_validate_validation_data`: the values of the operation's locations
    agree, match what the image already has, and are new only on a queued image."""
    given: dict = {}
    for spec in specs:
        for name, value in spec.validation_data.items():
            if given.get(name, value) != value:
                raise Conflict(f"Conflicting values for {name}")
            given[name] = value
    new = {}
    for name, value in given.items():
        current = plan.hashes.get(name)
        if value == current:
            continue
        if current:
            raise Conflict(f"{name} is already set with a different value")
        new[name] = value
    if not new:
        return
    if plan.state != Status.QUEUED:
        raise Conflict(
            f"New value(s) for {', '.join(new)} may only be provided when image status is 'queued'"
        )
    _check_hashes(new, error=Conflict)
    plan.hashes.update(new)


# --- applying it ---------------------------------------------------------------------


def _active_rows(image: Image) -> list[ImageLocation]:
    return list(image.locations.filter(status=LocationStatus.ACTIVE).order_by("id"))


def _new_urls(image: Image, changes: list[LocationChange]) -> list[str]:
    shown = {shown_url(row) for row in _active_rows(image)}
    return sorted({s.url for c in changes for s in c.locations if s.url not in shown})


def _probe(url: str) -> int:
    """The size the remote end declares for `url`; Glance asks its store the same."""
    try:
        with remote.open_remote(url) as stream:
            size = stream.size
    except remote.RemoteError as exc:
        raise InvalidInput(f"Invalid location {url}: {exc.message}") from None
    if not size:
        raise InvalidInput(f"Invalid location {url}: it declares no size.")
    return size


def _apply(image: Image, actor: Actor, changes: list[LocationChange]) -> Image:
    _plan(image, _active_rows(image), changes, sizes=None)  # refuse early, before any network
    sizes = {url: _probe(url) for url in _new_urls(image, changes)}
    with transaction.atomic():
        fresh = _lock(image.pk)
        if fresh.status in (Status.PENDING_DELETE, Status.DELETED):
            raise ImageNotFound(f"No image found with ID {image.pk}")
        plan = _plan(fresh, _active_rows(fresh), changes, sizes=sizes)
        _write(fresh, plan)
        if fresh.status == Status.QUEUED and plan.state == Status.ACTIVE:
            _transition(
                fresh,
                "activate",
                operation=Operation.ADD_LOCATION,
                actor=actor,
                reason=f"external location at {', '.join(plan.added_hosts)}, {plan.size} bytes",
                size=plan.size,
                **plan.hashes,
            )
        else:
            Image.objects.filter(pk=fresh.pk).update(updated_at=timezone.now())
        # Glance saves the image (image_repo.save): image.update, whatever the status.
        events.image_event("image.update", fresh)
    if any(row.in_store for row in plan.removed) and not _remove_location_data(fresh):
        logger.warning("Removing the data of a location of image %s failed", fresh.pk)
    return fresh


def _write(image: Image, plan: _Plan) -> None:
    """Make the image's active locations the plan's list, in its order. Rows have no
    position of their own (they list by id), so rows that must come after a new or
    moved one are written again; a removed row retires: external ones at once, ours
    once their bytes are gone."""
    kept = [e.row for e in plan.entries if e.row is not None]
    in_order = 0
    for entry, row in zip(plan.entries, sorted(kept, key=lambda r: r.pk), strict=False):
        if entry.row is not row:
            break
        in_order += 1
    for entry in plan.entries[:in_order]:
        if entry.row.metadata != entry.metadata:
            ImageLocation.objects.filter(pk=entry.row.pk).update(metadata=entry.metadata)
    moved = [e.row.pk for e in plan.entries[in_order:] if e.row is not None]
    ImageLocation.objects.filter(pk__in=moved).delete()
    ImageLocation.objects.bulk_create(
        ImageLocation(
            image=image,
            url=entry.row.url if entry.row else entry.url,
            in_store=entry.row.in_store if entry.row else False,
            metadata=entry.metadata,
        )
        for entry in plan.entries[in_order:]
    )
    for row in plan.removed:
        retired = LocationStatus.PENDING_DELETE if row.in_store else LocationStatus.DELETED
        ImageLocation.objects.filter(pk=row.pk).update(status=retired)
