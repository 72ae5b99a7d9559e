"""The image record and what hangs off it.

`Image.status` is a protected django-fsm field: it changes only through the
transition methods below, and those change memory only. Storage, hashing and
`save()` belong to `images.services`, which calls them inside a transaction.
"""

import uuid

from django.db import models
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition

from images.enums import (
    ContainerFormat,
    DiskFormat,
    LocationStatus,
    MemberStatus,
    Operation,
    Status,
    Visibility,
)
from images.errors import InvalidInput, InvalidTransition

S = Status
# What a record brought over from Glance may become: its status there (queued is
# where it starts already).
MIGRATE_TARGETS = [s for s in S.values if s != S.QUEUED]


class Image(ConcurrentTransitionMixin, models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255, null=True, blank=True)
    status = FSMField(default=S.QUEUED, choices=S.choices, protected=True, max_length=16)
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.SHARED
    )
    protected = models.BooleanField(default=False)
    os_hidden = models.BooleanField(default=False)
    checksum = models.CharField(max_length=32, null=True, blank=True)
    os_hash_algo = models.CharField(max_length=64, null=True, blank=True)
    os_hash_value = models.CharField(max_length=128, null=True, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    virtual_size = models.BigIntegerField(null=True, blank=True)
    # What format inspection found the data to be (blank: not inspected), and why
    # stored data fails the format rules (blank: it passes; set by inspect_images).
    data_format = models.CharField(
        max_length=16, blank=True, help_text="What format inspection found the data to be."
    )
    data_problem = models.TextField(
        blank=True, help_text="Why the stored data fails the format rules (inspect_images)."
    )
    disk_format = models.CharField(max_length=16, choices=DiskFormat.choices, null=True, blank=True)
    container_format = models.CharField(
        max_length=16, choices=ContainerFormat.choices, null=True, blank=True
    )
    min_disk = models.PositiveIntegerField(default=0, help_text="GiB")
    min_ram = models.PositiveIntegerField(default=0, help_text="MiB")
    owner = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    # The status a pending_delete image returns to when restored.
    status_before_delete = models.CharField(max_length=16, choices=S.choices, blank=True)
    # Set once the scrubber has begun removing data: from then on a restore could
    # bring back an image without its bytes, so it is refused.
    scrub_started_at = models.DateTimeField(null=True, blank=True)
    # A pending_delete image's end of retention given by the longest matching
    # RetentionRule; NULL when none matches, so IMAGES_SCRUB_DELAY_SECONDS applies as
    # set now (see images.services.retention for why a column).
    retained_until = models.DateTimeField(null=True, blank=True)
    # Last sign of life of the upload filling a `saving` image; the janitor kills
    # uploads whose worker stopped reporting.
    upload_heartbeat_at = models.DateTimeField(null=True, blank=True)

    # A deprecation schedule, as GCE's `deprecate` (images.services.deprecation sets
    # it, the scrubber acts on it). The replacement is an id, not a foreign key: its
    # deletion must not take this record's schedule with it.
    deprecated_at = models.DateTimeField(null=True, blank=True)
    obsolete_at = models.DateTimeField(null=True, blank=True)
    delete_at = models.DateTimeField(null=True, blank=True)
    replacement_id = models.UUIDField(null=True, blank=True)
    # The last step of the schedule the scrubber has recorded (history row and
    # event), so each is recorded exactly once: "", "deprecated" or "obsolete".
    deprecation_recorded = models.CharField(max_length=16, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("restore_image", "Can restore pending_delete images"),
            ("deactivate_image", "Can deactivate and reactivate images"),
            ("scrub_image", "Can scrub pending_delete images now"),
        ]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="image_created_idx"),
            models.Index(fields=["owner", "-created_at"], name="image_owner_created_idx"),
            models.Index(fields=["status", "deleted_at"], name="image_status_deleted_idx"),
            models.Index(
                fields=["status", "retained_until", "deleted_at"], name="image_status_retained_idx"
            ),
            models.Index(fields=["visibility", "-created_at"], name="image_visibility_idx"),
            models.Index(fields=["name"], name="image_name_idx"),
            models.Index(fields=["checksum"], name="image_checksum_idx"),
            # The scrubber's deprecation pass and the list's filters: few images
            # have a schedule, so only those are indexed.
            *(
                models.Index(
                    fields=[name],
                    name=f"image_{name}_idx",
                    condition=models.Q(**{f"{name}__isnull": False}),
                )
                for name in ("deprecated_at", "obsolete_at", "delete_at")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name or '(no name)'} ({self.id})"

    # --- transitions: memory only, named with Glance's verbs -------------------

    def _require_formats(self) -> None:
        missing = [f for f in ("container_format", "disk_format") if not getattr(self, f)]
        if missing:
            raise InvalidInput(f"Property {missing[0]} must be set prior to saving data.")

    def _forget_data(self) -> None:
        # Glance clears only size on going back to queued; stale hashes would
        # describe bytes that no longer exist, so they go too.
        self.size = self.virtual_size = None
        self.data_format = self.data_problem = ""
        self.checksum = self.os_hash_algo = self.os_hash_value = None
        self.upload_heartbeat_at = None

    @transition(field=status, source=S.QUEUED, target=S.SAVING)
    def begin_upload(self, *, now) -> None:
        self._require_formats()
        self.upload_heartbeat_at = now

    def _record_data(
        self, *, size, checksum, os_hash_algo, os_hash_value, virtual_size=None, data_format=""
    ) -> None:
        self.size = size
        self.virtual_size = virtual_size
        self.data_format = data_format
        self.data_problem = ""
        self.checksum = checksum
        self.os_hash_algo = os_hash_algo
        self.os_hash_value = os_hash_value
        self.upload_heartbeat_at = None

    @transition(field=status, source=S.SAVING, target=S.ACTIVE)
    def finish_upload(self, **data) -> None:
        """`data`: what `_record_data` takes."""
        self._record_data(**data)

    @transition(field=status, source=S.SAVING, target=S.QUEUED)
    def abort_upload(self) -> None:
        self._forget_data()

    @transition(field=status, source=S.SAVING, target=S.KILLED)
    def kill(self) -> None:
        self._forget_data()

    @transition(field=status, source=S.QUEUED, target=S.ACTIVE)
    def activate(self, *, size=None, checksum=None, os_hash_algo=None, os_hash_value=None):
        """Data that needs no upload: an external location, or none at all (size 0)."""
        self._require_formats()
        self._record_data(
            size=size, checksum=checksum, os_hash_algo=os_hash_algo, os_hash_value=os_hash_value
        )

    @transition(field=status, source=S.QUEUED, target=S.UPLOADING)
    def stage(self, *, now) -> None:
        self._require_formats()  # the staged bytes are inspected as they arrive
        self.upload_heartbeat_at = now  # cleared once the data is staged

    @transition(field=status, source=[S.QUEUED, S.UPLOADING], target=S.IMPORTING)
    def begin_import(self) -> None:
        self._require_formats()

    @transition(field=status, source=S.IMPORTING, target=S.ACTIVE)
    def finish_import(self, *, disk_format: str | None = None, **data) -> None:
        """`data`: what `_record_data` takes; `disk_format`: what the data was
        converted to on the way, if it was."""
        self._record_data(**data)
        if disk_format:
            self.disk_format = disk_format

    @transition(field=status, source=[S.UPLOADING, S.IMPORTING], target=S.QUEUED)
    def abort_import(self) -> None:
        self._forget_data()

    @transition(field=status, source=S.ACTIVE, target=S.DEACTIVATED)
    def deactivate(self) -> None:
        pass

    @transition(field=status, source=S.DEACTIVATED, target=S.ACTIVE)
    def reactivate(self) -> None:
        pass

    @transition(field=status, source=[S.ACTIVE, S.DEACTIVATED], target=S.PENDING_DELETE)
    def mark_pending_delete(self, *, now, retained_until=None) -> None:
        self.status_before_delete = self.status
        self.deleted_at = now
        self.retained_until = retained_until
        self.scrub_started_at = None

    @transition(
        field=status,
        source=[S.QUEUED, S.SAVING, S.UPLOADING, S.IMPORTING, S.KILLED, S.ACTIVE, S.DEACTIVATED],
        target=S.DELETED,
    )
    def mark_deleted(self, *, now) -> None:
        self.deleted_at = now
        self.upload_heartbeat_at = None

    @transition(field=status, source=S.PENDING_DELETE, target=RETURN_VALUE(S.ACTIVE, S.DEACTIVATED))
    def restore(self) -> str:
        if self.scrub_started_at is not None:
            raise InvalidTransition(
                f"Image {self.id} cannot be restored: the scrubber has begun removing its data."
            )
        previous = self.status_before_delete or S.ACTIVE
        self.status_before_delete = ""
        self.deleted_at = None
        self.retained_until = None
        return previous

    @transition(field=status, source=S.PENDING_DELETE, target=S.DELETED)
    def scrub(self) -> None:
        pass

    @transition(field=status, source=S.QUEUED, target=RETURN_VALUE(*MIGRATE_TARGETS))
    def migrate(self, *, to: str) -> str:
        """A new record taking the status its image had in the Glance it is brought
        over from (import_glance): any status, as it was there. The service has set
        the rest of the record (data, deleted_at) as Glance had it."""
        if to not in S.values or to == S.QUEUED:
            raise InvalidInput(f"An image cannot be brought over as {to!r}.")
        return to


class ImageLocation(models.Model):
    """Where an image's bytes are: a name in our store, or an external URL."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="locations")
    url = models.CharField(max_length=2048)
    in_store = models.BooleanField(
        default=True, help_text="The bytes live in our store (and are ours to delete)."
    )
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=LocationStatus.choices, default=LocationStatus.ACTIVE
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status"], name="location_status_idx")]

    def __str__(self) -> str:
        return self.url


class ImageTag(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="tags")
    value = models.CharField(max_length=255)

    class Meta:
        ordering = ["value"]
        constraints = [models.UniqueConstraint(fields=["image", "value"], name="unique_image_tag")]
        indexes = [models.Index(fields=["value"], name="tag_value_idx")]

    def __str__(self) -> str:
        return self.value


class ImageProperty(models.Model):
    """An extra (operator- or user-defined) string property of an image."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="properties")
    name = models.CharField(max_length=255)
    value = models.TextField()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "image properties"
        constraints = [
            models.UniqueConstraint(fields=["image", "name"], name="unique_image_property")
        ]
        indexes = [models.Index(fields=["name", "value"], name="property_name_value_idx")]

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class ImageMember(models.Model):
    """A project (here: a username) a `shared` image is offered to."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="members")
    member = models.CharField(max_length=255)
    status = models.CharField(
        max_length=16, choices=MemberStatus.choices, default=MemberStatus.PENDING
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "member"], name="unique_image_member")
        ]
        indexes = [models.Index(fields=["member", "status"], name="member_status_idx")]

    def __str__(self) -> str:
        return f"{self.member} ({self.status})"


class ImageTransition(models.Model):
    """One row per status change: the image's history."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="transitions")
    source = models.CharField(max_length=16, blank=True, help_text="Empty for a new image.")
    target = models.CharField(max_length=16)
    operation = models.CharField(max_length=32, choices=Operation.choices)
    actor = models.CharField(max_length=255)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["image", "created_at"], name="transition_image_idx")]

    def __str__(self) -> str:
        return f"{self.source or '∅'} → {self.target} ({self.operation})"


class PendingDeleteImage(Image):
    """The admin's recycle bin: the same rows, shown to recovery staff as
    `pending_delete` images waiting for the scrubber. The admin does the filtering."""

    class Meta:
        proxy = True
        ordering = ["deleted_at", "id"]
        verbose_name = "image in the recycle bin"
        verbose_name_plural = "recycle bin"
        # Who may see and restore is decided by the image permissions.
        default_permissions = ()


# Defined beside, registered here: Django looks for an app's models in its models module.
from images.records import ImageTask, PurgedImage, RetentionRule  # noqa: E402

__all__ = [
    "Image",
    "ImageLocation",
    "ImageMember",
    "ImageProperty",
    "ImageTag",
    "ImageTask",
    "ImageTransition",
    "PendingDeleteImage",
    "PurgedImage",
    "RetentionRule",
]
