"""Domain operations: the only code that changes an image's status or its bytes.

Each status change is one transaction: lock the row, run the model's transition,
save, write the history row. Storage I/O happens outside those transactions,
because moving gigabytes must not hold a database lock.

One module per concern; callers import from this package (``services.image_delete``):

- ``_transitions``  the one path for a status change: ``_lock``, ``_transition``
- ``metadata``      image_create, image_update, image_add_tag, image_remove_tag
- ``members``       image_member_add, image_member_update, image_member_remove
- ``data``          image_upload, image_download
- ``imports``       image_stage, image_import (the requests' side of an import)
- ``import_worker`` import_run (the worker's side), imports_reap_stale, tasks_purge_expired
- ``activation``    image_deactivate, image_reactivate
- ``locations``     image_locations_change (PATCH), image_location_add, image_locations_fetch (2.17)
- ``deletion``      image_delete, image_delete_preview, image_restore, image_scrub
- ``deprecation`` image_deprecate, deprecation_state, images_deprecation_due (scheduled
                    deprecation: its dates passing, and the scheduled delete)
- ``retention``     retention_rule_save, retention_rule_delete (the recycle bin's rules)
- ``janitor``       images_scrub_due, images_kill_stale_uploads,
                    images_remove_killed_leftovers, images_purge, scrubber_pass
- ``purge_records`` purged_records_write (what images_purge keeps: PurgedImage)
- ``store_check``   store_verify
- ``data_check``    image_inspect (format inspection of stored data)
- ``glance_import`` glance_import (import_glance: images from a Glance database)
- ``glance_data``   its bytes: Glance's file:// and rbd:// locations copied or adopted

The names below are re-exports. To patch one in a test, patch the module that
defines it (``images.services.janitor.SCRUB_BATCH``): the operations read their
module's globals, so a patch on this package would silently change nothing.
"""

from images.services.activation import image_deactivate, image_reactivate
from images.services.data import ImageData, image_download, image_upload
from images.services.data_check import DataCheck, image_inspect, images_to_inspect
from images.services.deletion import (
    DeletePreview,
    image_delete,
    image_delete_preview,
    image_restore,
    image_scrub,
)
from images.services.deprecation import (
    DeprecationReport,
    deprecation_state,
    image_deprecate,
    images_deprecation_due,
)
from images.services.glance_import import DataMode, ImportReport, glance_import
from images.services.import_worker import import_run, imports_reap_stale, tasks_purge_expired
from images.services.imports import image_import, image_stage, import_methods
from images.services.janitor import (
    SCRUB_BATCH,
    ScrubReport,
    images_kill_stale_uploads,
    images_purge,
    images_remove_killed_leftovers,
    images_scrub_due,
    scrubber_pass,
)
from images.services.locations import (
    LocationChange,
    LocationSpec,
    image_location_add,
    image_locations_change,
    image_locations_check,
    image_locations_fetch,
    locations_shown_to,
    shown_url,
)
from images.services.members import (
    IMAGE_MEMBER_QUOTA,
    ONLY_SHARED,
    image_member_add,
    image_member_remove,
    image_member_update,
    members_apply,
)
from images.services.metadata import (
    EMPTY_MD5,
    EMPTY_SHA512,
    FORMAT_CHANGE_STATUSES,
    IMAGE_PROPERTY_QUOTA,
    IMAGE_TAG_QUOTA,
    MUTABLE_FIELDS,
    image_add_tag,
    image_create,
    image_remove_tag,
    image_update,
)
from images.services.store_check import StoreReport, store_verify

__all__ = [
    "EMPTY_MD5",
    "EMPTY_SHA512",
    "FORMAT_CHANGE_STATUSES",
    "IMAGE_MEMBER_QUOTA",
    "IMAGE_PROPERTY_QUOTA",
    "IMAGE_TAG_QUOTA",
    "MUTABLE_FIELDS",
    "ONLY_SHARED",
    "SCRUB_BATCH",
    "DataCheck",
    "DataMode",
    "DeletePreview",
    "DeprecationReport",
    "ImageData",
    "ImportReport",
    "LocationChange",
    "LocationSpec",
    "ScrubReport",
    "StoreReport",
    "deprecation_state",
    "glance_import",
    "image_add_tag",
    "image_create",
    "image_deactivate",
    "image_delete",
    "image_delete_preview",
    "image_deprecate",
    "image_download",
    "image_import",
    "image_inspect",
    "image_location_add",
    "image_locations_change",
    "image_locations_check",
    "image_locations_fetch",
    "image_member_add",
    "image_member_remove",
    "image_member_update",
    "image_reactivate",
    "image_remove_tag",
    "image_restore",
    "image_scrub",
    "image_stage",
    "image_update",
    "image_upload",
    "images_deprecation_due",
    "images_kill_stale_uploads",
    "images_purge",
    "images_remove_killed_leftovers",
    "images_scrub_due",
    "images_to_inspect",
    "import_methods",
    "import_run",
    "imports_reap_stale",
    "locations_shown_to",
    "members_apply",
    "scrubber_pass",
    "shown_url",
    "store_verify",
    "tasks_purge_expired",
]
