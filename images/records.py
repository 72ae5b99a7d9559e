"""The registry's records beside the images themselves: the Glance task of an
import, what is kept of an image once purged, and the recycle bin's retention
rules. Registered through images.models, which imports them."""

import uuid

from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from images.enums import TaskStatus, Visibility


class ImageTask(ConcurrentTransitionMixin, models.Model):
    """A Glance task record (`GET /v2/tasks/{id}`): one interoperable import, from
    the request that asked for it to the worker's outcome. The work itself runs in a
    django-tasks worker; this row is what Glance clients see of it, and its
    heartbeat is how the scrubber's janitor knows the worker is still alive."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=32, default="api_image_import")
    status = FSMField(
        default=TaskStatus.PENDING, choices=TaskStatus.choices, protected=True, max_length=16
    )
    image = models.ForeignKey(
        "images.Image", on_delete=models.SET_NULL, null=True, blank=True, related_name="tasks"
    )
    input = models.JSONField(default=dict)
    result = models.JSONField(null=True, blank=True)
    message = models.TextField(blank=True)
    owner = models.CharField(max_length=255, null=True, blank=True)
    user_id = models.CharField(max_length=255, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid running it")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Written with the heartbeat, so the admin can show how far a running import got.
    bytes_received = models.BigIntegerField(
        null=True, blank=True, help_text="bytes the worker had read at its last heartbeat"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [
            models.Index(fields=["status", "heartbeat_at"], name="task_status_idx"),
            models.Index(fields=["expires_at"], name="task_expires_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.status})"

    @transition(field=status, source=TaskStatus.PENDING, target=TaskStatus.PROCESSING)
    def start(self, *, worker: str, now) -> None:
        self.worker = worker
        self.heartbeat_at = now

    @transition(field=status, source=TaskStatus.PROCESSING, target=TaskStatus.SUCCESS)
    def succeed(self, *, result: dict, expires_at) -> None:
        self.result = result
        self.message = ""
        self.expires_at = expires_at

    @transition(
        field=status, source=[TaskStatus.PENDING, TaskStatus.PROCESSING], target=TaskStatus.FAILURE
    )
    def fail(self, *, message: str, expires_at) -> None:
        self.message = message
        self.expires_at = expires_at


class PurgedImage(models.Model):
    """What is kept of an image once `images_purge` removed its row (and, by cascade,
    its transitions): enough to answer "what happened to this id?". One row per purge,
    written in the purge's transaction; `history` holds the transitions as compact
    lists in `HISTORY_FIELDS` order, oldest first (images.history reads them)."""

    HISTORY_FIELDS = ("id", "created_at", "source", "target", "operation", "actor", "reason")

    # Not the primary key: a purged id is free again, and could be purged twice.
    image_id = models.UUIDField(db_index=True)
    name = models.CharField(max_length=255, null=True, blank=True)
    owner = models.CharField(max_length=255, null=True, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    checksum = models.CharField(max_length=32, null=True, blank=True)
    created_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField()
    history = models.JSONField(default=list)

    class Meta:
        ordering = ["-purged_at", "-id"]
        verbose_name = "purged image"
        indexes = [models.Index(fields=["owner"], name="purged_owner_idx")]

    def __str__(self) -> str:
        return f"{self.name or '(no name)'} ({self.image_id}, purged)"


class RetentionRule(models.Model):
    """How long a deleted image stays in the recycle bin, for the images it matches
    (EC2 Recycle Bin's retention rules). Blank criteria match any image; of all the
    rules matching an image the longest retention wins, in place of
    IMAGES_SCRUB_DELAY_SECONDS. A locked rule cannot be shortened, narrowed, unlocked
    or deleted without the `unlock_retention_rule` permission."""

    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    owner = models.CharField(max_length=255, blank=True, help_text="Blank: any owner.")
    tag = models.CharField(max_length=255, blank=True, help_text="Blank: any tags.")
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, blank=True, help_text="Blank: any visibility."
    )
    retention = models.DurationField(
        help_text="How long a matching deleted image stays restorable, e.g. 30 00:00:00."
    )
    locked = models.BooleanField(
        default=False,
        help_text="Only holders of the unlock permission may shorten, narrow, unlock or "
        "delete a locked rule.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        permissions = [("unlock_retention_rule", "Can shorten, unlock and delete locked rules")]

    def __str__(self) -> str:
        return self.name
