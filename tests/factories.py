"""Images in any status, reached through the model's own transitions (never by
assigning `status`), then saved once."""

from django.utils import timezone

from images.enums import Status
from images.models import Image

# The transitions that lead from a fresh `queued` image to each status.
PATHS = {
    Status.QUEUED: [],
    Status.SAVING: ["begin_upload"],
    Status.ACTIVE: ["begin_upload", "finish_upload"],
    Status.KILLED: ["begin_upload", "kill"],
    Status.UPLOADING: ["stage"],
    Status.IMPORTING: ["stage", "begin_import"],
    Status.DEACTIVATED: ["begin_upload", "finish_upload", "deactivate"],
    Status.PENDING_DELETE: ["begin_upload", "finish_upload", "mark_pending_delete"],
    Status.DELETED: ["mark_deleted"],
}

ARGS = {
    "begin_upload": lambda: {"now": timezone.now()},
    "stage": lambda: {"now": timezone.now()},
    "finish_upload": lambda: {
        "size": 0,
        "checksum": "d41d8cd98f00b204e9800998ecf8427e",
        "os_hash_algo": "sha512",
        "os_hash_value": "0" * 128,
    },
    "finish_import": lambda: ARGS["finish_upload"](),
    "mark_pending_delete": lambda: {"now": timezone.now()},
    "mark_deleted": lambda: {"now": timezone.now()},
}


def image_in(status: str, *, save: bool = True, **fields) -> Image:
    fields.setdefault("disk_format", "raw")
    fields.setdefault("container_format", "bare")
    fields.setdefault("name", f"{status}-image")
    image = Image(**fields)
    for name in PATHS[status]:
        getattr(image, name)(**ARGS.get(name, dict)())
    if save:
        image.save()
    return image
