"""Bringing images over from a Glance database (import_glance): each image with its
id, status, metadata, tags, properties, members and locations, and its bytes copied
into our store (`copy`), adopted where they lie inside it (`adopt`), or not at all
(the bytes: glance_data.py).

Per image: the bytes first (copied and hashed on the way, Glance's checksum and
os_hash_value verified), then one transaction that creates the whole record, so an
interrupted run leaves no half-made image and a rerun picks up where it stopped.
An image whose id is already here is skipped: running it twice changes nothing.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DataError, IntegrityError, transaction

from images.enums import IMPORTER, LocationStatus, MemberStatus, Operation, Status
from images.errors import ImageError
from images.glance_db import GlanceDatabase, GlanceImage, shown
from images.models import (
    Image,
    ImageLocation,
    ImageMember,
    ImageProperty,
    ImageTag,
    ImageTransition,
)
from images.services.glance_data import GLANCE_RBD_POOL, Data, DataMode, GlanceData, Skip
from images.services.retention import retained_until

# Uploads in progress in Glance: brought over as they are, with Glance's updated_at
# as their last sign of life, so the janitor treats a stale one as it treats ours.
IN_PROGRESS = (Status.SAVING, Status.UPLOADING, Status.IMPORTING)


@dataclass
class ImportReport:
    total: int = 0
    imported: list[str] = field(default_factory=list)
    by_status: Counter = field(default_factory=Counter)
    bytes: int = 0  # copied into our store, or adopted there
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, why)
    already: int = 0  # imported by an earlier run
    changed: list[str] = field(default_factory=list)  # updated in Glance since
    soft_deleted: int = 0  # Glance rows with deleted=1: brought over as `deleted`
    notes: list[tuple[str, str]] = field(default_factory=list)  # (id, what was done)
    counts: Counter = field(default_factory=Counter)  # members, tags, properties, locations


def glance_import(
    *,
    database: GlanceDatabase,
    data: DataMode = DataMode.NONE,
    dry_run: bool = False,
    on_progress: Callable[[ImportReport, int], None] | None = None,
    rbd_pool: str = GLANCE_RBD_POOL,
) -> ImportReport:
    """Bring every image of `database` over; with `dry_run`, only say what would be
    done. `on_progress(report, done)` is called after each image. `rbd_pool` is
    Glance's rbd_store_pool, where its legacy `rbd://<image>` locations are."""
    report = ImportReport(total=database.count())
    source = shown(database.url)
    glance_data = GlanceData(data, rbd_pool=rbd_pool)
    try:
        for done, image in enumerate(database.images(), start=1):
            try:
                _import_one(image, data=glance_data, dry_run=dry_run, source=source, report=report)
            except Skip as exc:
                report.skipped.append((image.id, str(exc)))
            if on_progress is not None:
                on_progress(report, done)
    finally:
        glance_data.close()
    return report


def _status_of(image: GlanceImage) -> str:
    """Our status for a Glance row: a soft-deleted row is `deleted` whatever it says
    (only `pending_delete` keeps its data after a delete)."""
    if image.deleted and image.state != Status.PENDING_DELETE:
        return Status.DELETED
    if image.state not in Status.values:
        raise Skip(f"unknown Glance status {image.state!r}")
    return image.state


def _import_one(
    image: GlanceImage, *, data: GlanceData, dry_run: bool, source: str, report: ImportReport
) -> None:
    target = _status_of(image)
    existing = Image.objects.filter(pk=image.id).values_list("updated_at", flat=True).first()
    if existing is not None:
        report.already += 1
        if image.updated_at and image.updated_at > existing:
            report.changed.append(image.id)
        return
    if target == Status.DELETED and image.deleted:
        report.soft_deleted += 1
    stored = data.bring(image, target, dry_run=dry_run, notes=report.notes)
    if dry_run:
        _count(image, target, stored, report)
        return
    try:
        _record(image, target, stored, source=source)
    except BaseException as exc:
        # The bytes were copied for this record, which was not made.
        data.discard(stored)
        if isinstance(exc, IntegrityError):
            report.already += 1  # another run imported it meanwhile
            return
        if isinstance(exc, ImageError):
            raise Skip(exc.message) from None
        if isinstance(exc, DataError):  # a value our database refuses (too long, ...)
            raise Skip(f"our database refused a value: {exc}") from None
        raise
    _count(image, target, stored, report)


def _count(image: GlanceImage, target: str, stored: Data, report: ImportReport) -> None:
    report.imported.append(image.id)
    report.by_status[target] += 1
    report.bytes += stored.size
    report.counts["members"] += len(image.members) if target != Status.DELETED else 0
    report.counts["tags"] += len(image.tags) if target != Status.DELETED else 0
    report.counts["properties"] += len(image.properties) if target != Status.DELETED else 0
    report.counts["locations"] += len(stored.external) + (1 if stored.store_name else 0)


# --- the record -------------------------------------------------------------------


def _record(image: GlanceImage, target: str, stored: Data, *, source: str) -> None:
    """The whole image in one transaction; Glance's times written after the saves
    that stamp ours (created_at/updated_at are automatic)."""
    record = Image(
        id=image.id,
        name=image.name,
        visibility=image.visibility,
        protected=image.protected,
        os_hidden=image.os_hidden,
        disk_format=image.disk_format,
        container_format=image.container_format,
        min_disk=image.min_disk,
        min_ram=image.min_ram,
        owner=image.owner,
    )
    # As Glance has them, whatever the status: a staged (uploading) image has a size.
    record.size = image.size if image.size is not None or not stored.store_name else stored.size
    record.virtual_size = image.virtual_size
    record.checksum = image.checksum
    record.os_hash_algo = image.os_hash_algo
    record.os_hash_value = image.os_hash_value
    if target == Status.PENDING_DELETE:
        # Glance does not say whether it was deactivated before: active is what its
        # own restore (glance-scrubber --restore) gives back.
        record.status_before_delete = Status.ACTIVE
    if target in (Status.PENDING_DELETE, Status.DELETED):
        record.deleted_at = image.deleted_at or image.updated_at or image.created_at
    if target in IN_PROGRESS:
        record.upload_heartbeat_at = image.updated_at or image.created_at
    if target != Status.QUEUED:
        record.migrate(to=target)
    location_state = (
        LocationStatus.PENDING_DELETE if target == Status.PENDING_DELETE else LocationStatus.ACTIVE
    )
    with transaction.atomic():
        record.save(force_insert=True)
        locations = [
            ImageLocation(
                image=record,
                url=location.url,
                in_store=False,
                metadata=location.metadata,
                status=location_state,
            )
            for location in stored.external
        ]
        if stored.store_name:
            locations.insert(
                0,
                ImageLocation(
                    image=record, url=stored.store_name, in_store=True, status=location_state
                ),
            )
        ImageLocation.objects.bulk_create(locations)
        if target != Status.DELETED:
            _children(record, image)
        ImageTransition.objects.create(
            image=record,
            source="",
            target=target,
            operation=Operation.MIGRATE,
            actor=IMPORTER,
            reason=_reason(image, source, stored),
        )
        kept = {}
        if target == Status.PENDING_DELETE:
            # The recycle bin's rules apply from Glance's delete, as to ours.
            kept["retained_until"] = retained_until(record, record.deleted_at)
        Image.objects.filter(pk=record.pk).update(
            created_at=image.created_at, updated_at=image.updated_at or image.created_at, **kept
        )


def _children(record: Image, image: GlanceImage) -> None:
    ImageTag.objects.bulk_create([ImageTag(image=record, value=tag) for tag in image.tags])
    ImageProperty.objects.bulk_create(
        [ImageProperty(image=record, name=k, value=v) for k, v in image.properties.items()]
    )
    members = ImageMember.objects.bulk_create(
        [
            ImageMember(
                image=record,
                member=m.member,
                status=m.state if m.state in MemberStatus.values else MemberStatus.PENDING,
            )
            for m in image.members
        ]
    )
    for row, m in zip(members, image.members, strict=True):
        ImageMember.objects.filter(pk=row.pk).update(
            created_at=m.created_at, updated_at=m.updated_at
        )


def _reason(image: GlanceImage, source: str, stored: Data) -> str:
    def when(value: datetime | None) -> str:
        return value.isoformat() if value else "-"

    deleted = " (deleted there)" if image.deleted else ""
    data = ""
    if stored.store_name:
        data = f"; data {'copied' if stored.copied else 'adopted'} ({stored.size} bytes)"
    return (
        f"imported from Glance database {source}: status {image.state}{deleted}, "
        f"created {when(image.created_at)}, updated {when(image.updated_at)}{data}"
    )
