"""The value sets of an image record, as Glance defines them."""

from django.db import models


class Status(models.TextChoices):
    QUEUED = "queued"
    SAVING = "saving"
    UPLOADING = "uploading"
    IMPORTING = "importing"
    ACTIVE = "active"
    DEACTIVATED = "deactivated"
    KILLED = "killed"
    PENDING_DELETE = "pending_delete"
    DELETED = "deleted"


# Statuses hidden from ordinary users: the image is gone as far as they can tell.
DELETED_STATUSES = (Status.PENDING_DELETE, Status.DELETED)


class Visibility(models.TextChoices):
    PUBLIC = "public"
    COMMUNITY = "community"
    SHARED = "shared"
    PRIVATE = "private"


class DiskFormat(models.TextChoices):
    # Format names are identifiers: shown as written (qcow2, not Qcow2).
    AMI = "ami", "ami"
    ARI = "ari", "ari"
    AKI = "aki", "aki"
    VHD = "vhd", "vhd"
    VHDX = "vhdx", "vhdx"
    VMDK = "vmdk", "vmdk"
    RAW = "raw", "raw"
    QCOW2 = "qcow2", "qcow2"
    VDI = "vdi", "vdi"
    ISO = "iso", "iso"
    PLOOP = "ploop", "ploop"


class ContainerFormat(models.TextChoices):
    AMI = "ami", "ami"
    ARI = "ari", "ari"
    AKI = "aki", "aki"
    BARE = "bare", "bare"
    OVF = "ovf", "ovf"
    OVA = "ova", "ova"
    DOCKER = "docker", "docker"
    COMPRESSED = "compressed", "compressed"


class LocationStatus(models.TextChoices):
    ACTIVE = "active"
    PENDING_DELETE = "pending_delete"
    DELETED = "deleted"


class MemberStatus(models.TextChoices):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Operation(models.TextChoices):
    """What moved an image from one status to another, as the history records it."""

    CREATE = "create"
    UPLOAD = "upload"
    UPLOAD_FAILED = "upload_failed"
    KILL = "kill"
    ADD_LOCATION = "add_location"
    STAGE = "stage"
    IMPORT = "import"
    IMPORT_FAILED = "import_failed"
    DEACTIVATE = "deactivate"
    REACTIVATE = "reactivate"
    DELETE = "delete"
    RESTORE = "restore"
    SCRUB = "scrub"
    MIGRATE = "migrate"  # brought over from a Glance database (import_glance)
    # The dates of a deprecation schedule passing (images.services.deprecation): no
    # status change, so their rows have source == target.
    DEPRECATE = "deprecate"
    OBSOLETE = "obsolete"


class DeprecationState(models.TextChoices):
    """Where an image is in its deprecation schedule (GCE's deprecation states)."""

    ACTIVE = "active"  # no schedule, or none of its dates has passed
    DEPRECATED = "deprecated"  # still usable; listed with a warning
    OBSOLETE = "obsolete"  # new use refused (410), except for admins


class TaskStatus(models.TextChoices):
    """A Glance task record's status (GET /v2/tasks), not an image's."""

    PENDING = "pending"
    PROCESSING = "processing"
    SUCCESS = "success"
    FAILURE = "failure"


SCRUBBER = "scrubber"  # the actor name recorded for the background passes
IMPORTER = "import_glance"  # the actor name of images brought over from Glance
