"""Format inspection of data already stored: what `image_upload` checks in flight,
applied to images uploaded before it existed (or before an operator's rules changed).
"""

from dataclasses import dataclass

from images import storage
from images.enums import LocationStatus, Status
from images.errors import FormatMismatch, UnsafeImage
from images.inspection import Inspection
from images.models import Image

# Images whose stored bytes can be read: the statuses that keep their data.
WITH_DATA = (Status.ACTIVE, Status.DEACTIVATED, Status.PENDING_DELETE)


@dataclass(frozen=True)
class DataCheck:
    image: Image
    data_format: str
    virtual_size: int | None
    problem: str  # blank when the data passes the rules

    @property
    def ok(self) -> bool:
        return not self.problem


def image_inspect(*, image: Image) -> DataCheck | None:
    """Inspect an image's stored data and record what it is: `data_format`,
    `virtual_size` (when it was unknown) and `data_problem` (a mismatch with its
    disk_format or a failed safety check; blank when it passes). The status is not
    touched: what to do with a problem image is the operator's call. None when the
    image has no stored data to inspect (or is not a bare container)."""
    location = image.locations.filter(status=LocationStatus.ACTIVE, in_store=True).first()
    if image.status not in WITH_DATA or location is None:
        return None
    inspection = Inspection(image.disk_format, image.container_format)
    if not inspection.enabled:
        return None
    problem, verdict = "", None
    try:
        with storage.open_data(location.url) as data:
            while not inspection.settled and (chunk := data.read(storage.CHUNK_SIZE)):
                inspection.feed(chunk)
        verdict = inspection.finish(image.size)
    except (FormatMismatch, UnsafeImage) as refusal:
        problem = refusal.message
    changes = {"data_problem": problem}
    if verdict is not None:
        changes["data_format"] = verdict.detected
        if image.virtual_size is None and verdict.virtual_size is not None:
            changes["virtual_size"] = verdict.virtual_size
    Image.objects.filter(pk=image.pk).update(**changes)
    image.refresh_from_db(fields=list(changes))
    return DataCheck(image, image.data_format, image.virtual_size, problem)


def images_to_inspect(*, only_uninspected: bool = False):
    """Images with stored data, oldest first; with `only_uninspected`, those never
    inspected (no recorded data format)."""
    images = Image.objects.filter(status__in=WITH_DATA, container_format="bare")
    if only_uninspected:
        images = images.filter(data_format="")
    return images.order_by("created_at", "id")
