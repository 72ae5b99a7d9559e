"""Store verification: the records compared with the bytes in the store."""

from dataclasses import dataclass, field

from images import storage
from images.enums import LocationStatus, Status
from images.models import Image, ImageLocation


@dataclass
class StoreReport:
    orphans: list[str] = field(default_factory=list)  # bytes no live image points at
    missing: list = field(default_factory=list)  # live images whose bytes are gone
    corrupt: list = field(default_factory=list)  # bytes that no longer match their hashes
    removed: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.orphans or self.missing or self.corrupt)


def store_verify(*, rehash: bool = False, remove_orphans: bool = False) -> StoreReport:
    """Compare the records with the store: orphans, missing data and (with `rehash`)
    checksum mismatches. With `remove_orphans`, orphaned bytes are removed.

    Bytes count as owned while a location that is not yet `deleted` points at them,
    the image's own name and its `.partial` while it is `saving` (an upload in
    progress), and staged data (and its `.partial`) while its image is being staged
    or imported.
    """
    report = StoreReport()
    names = storage.list_names()
    owned = set(
        ImageLocation.objects.filter(in_store=True)
        .exclude(status=LocationStatus.DELETED)
        .values_list("url", flat=True)
    )
    uploading = set()
    for pk in Image.objects.filter(status=Status.SAVING).values_list("pk", flat=True):
        # RBD writes in place, under the final name; a filesystem writes a .partial.
        uploading |= {storage.partial_name(pk), storage.object_name(pk)}
    importing = Image.objects.filter(status__in=[Status.UPLOADING, Status.IMPORTING])
    for pk in importing.values_list("pk", flat=True):
        staged = storage.staged_name(pk)
        uploading |= {staged, storage.partial_name(pk, staged), storage.partial_name(pk)}
    report.orphans = [name for name in names if name not in owned and name not in uploading]

    present = set(names)
    live = ImageLocation.objects.filter(
        in_store=True,
        status__in=[LocationStatus.ACTIVE, LocationStatus.PENDING_DELETE],
        image__status__in=[Status.ACTIVE, Status.DEACTIVATED, Status.PENDING_DELETE],
    ).select_related("image")
    for location in live:
        image = location.image
        if location.url not in present:
            report.missing.append(image.pk)
        elif rehash and storage.hash_object(location.url) != (
            image.checksum,
            image.os_hash_value,
        ):
            report.corrupt.append(image.pk)

    if remove_orphans:
        for name in report.orphans:
            # Re-check just before removing: an upload may have finished meanwhile.
            if (
                not ImageLocation.objects.filter(url=name, in_store=True)
                .exclude(status=LocationStatus.DELETED)
                .exists()
            ):
                storage.delete(name)
                report.removed.append(name)
    return report
