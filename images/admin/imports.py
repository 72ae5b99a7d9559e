"""Interoperable import in the admin: an image's import tasks and their progress on
its page, "Import from URL" on a queued image, the "import" filter of the image
list, and the task records themselves, read-only.

The import is started by `services.image_import` exactly as the API's
POST /v2/images/{id}/import starts it; its refusals (a URL the web-download rules
refuse, an image that is no longer queued) become messages through
`outcomes.attempt`, and nothing changes."""

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from images import policy, services
from images.admin.display import human_size, image_label, short_time
from images.admin.lists import CappedCountMixin
from images.admin.outcomes import REFUSED, attempt
from images.admin.readonly import ReadOnlyAdminMixin
from images.enums import TaskStatus
from images.models import Image, ImageProperty, ImageTask
from images.policy import Action
from images.services.imports import FAILED_IMPORT, IMPORT_TASK

WEB_DOWNLOAD = "web-download"


def method_of(task: ImageTask) -> tuple[str, str]:
    """The import method and its URI ("" for glance-direct), as the task's input
    records them in Glance's shape."""
    method = (task.input or {}).get("import_req", {}).get("method", {})
    return method.get("name", ""), method.get("uri", "")


def _ago(when: datetime | None) -> str:
    """A heartbeat's age in seconds while it is fresh: a worker beats every few."""
    if when is None:
        return "—"
    now = timezone.now()
    seconds = int((now - when).total_seconds())
    return f"{max(seconds, 0)} s ago" if seconds < 60 else f"{timesince(when, now)} ago"


def progress(task: ImageTask, image: Image) -> str:
    """How far a task got, as far as the record knows: the bytes read at the last
    heartbeat (every few seconds), out of the staged size when there is one (a
    web-download's total is known only to the worker)."""
    if task.status == TaskStatus.PENDING:
        return "waiting for a worker"
    if task.status != TaskStatus.PROCESSING:
        return ""
    if task.bytes_received is None:
        return f"started {_ago(task.heartbeat_at)}; no bytes reported yet"
    done = human_size(task.bytes_received)
    if image.size:
        done = f"{done} of {human_size(image.size)}"
    return f"{done} read (as of {_ago(task.heartbeat_at)})"


@dataclass(frozen=True)
class TaskRow:
    task: ImageTask
    method: str
    uri: str
    created: str
    updated: str
    heartbeat: str
    progress: str
    received: str


def task_rows(image: Image) -> list[TaskRow]:
    """The image's import tasks, newest first (the model's ordering)."""
    rows = []
    for task in image.tasks.all():
        method, uri = method_of(task)
        rows.append(
            TaskRow(
                task=task,
                method=method,
                uri=uri,
                created=short_time(task.created_at),
                updated=short_time(task.updated_at),
                heartbeat=_ago(task.heartbeat_at),
                progress=progress(task, image),
                received=human_size(task.bytes_received),
            )
        )
    return rows


def import_page_context(request, image: Image) -> dict:
    offered = WEB_DOWNLOAD in services.import_methods()
    return {
        "import_tasks": task_rows(image),
        "import_url": (
            reverse("admin:images_image_import", args=[image.pk])
            if offered and policy.can_import_from_url(request.user, image)
            else None
        ),
        "can_view_tasks": request.user.has_perm("images.view_imagetask"),
    }


class ImportFromUrlForm(forms.Form):
    # The web-download rules (images/remote.py, through the service) judge the URL;
    # the form only asks that there is one.
    uri = forms.CharField(max_length=2048, strip=True)


class ImportFromUrlMixin:
    """The image page's "Import from URL" view, mixed into ImageAdmin (whose
    `_image_or_404` finds the image as its other buttons do)."""

    def get_urls(self):
        return [
            path(
                "<path:object_id>/import/",
                self.admin_site.admin_view(self.import_view),
                name="images_image_import",
            ),
            *super().get_urls(),
        ]

    def import_view(self, request, object_id):
        """POST only: start a web-download import of the URL into a queued image."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        image = self._image_or_404(request, object_id)
        if not policy.may(request.user, image, Action.UPLOAD):
            raise PermissionDenied
        page = reverse("admin:images_image_change", args=[image.pk])
        form = ImportFromUrlForm(request.POST)
        if not form.is_valid():
            messages.error(request, f"{image_label(image)} was not imported: give a URL.")
            return HttpResponseRedirect(page)
        uri = form.cleaned_data["uri"]
        task = attempt(
            request,
            image,
            "imported",
            lambda: services.image_import(
                image=image, actor=request.user, method=WEB_DOWNLOAD, uri=uri
            ),
        )
        if task is not REFUSED:
            self.log_change(request, image, f"Import from {uri} started (task {task.pk})")
            messages.success(
                request,
                f"{image_label(image)}: the import from {uri} started (task {task.pk}); "
                "its progress is shown under “Import tasks”.",
            )
        return HttpResponseRedirect(page)


class ImportFilter(admin.SimpleListFilter):
    """Glance's import properties say it: `os_glance_failed_import` after a failure,
    `os_glance_import_task` (the lock) while one runs. One EXISTS on the
    (image, name) unique index each, never a join that multiplies rows."""

    title = "import"
    parameter_name = "import"

    def lookups(self, request, model_admin):
        return [
            ("failed", "Failed"),
            ("running", "Importing now"),
            ("none", "Neither"),
        ]

    @staticmethod
    def _has(name: str) -> Exists:
        return Exists(ImageProperty.objects.filter(image=OuterRef("pk"), name=name))

    def queryset(self, request, queryset):
        failed, running = self._has(FAILED_IMPORT), self._has(IMPORT_TASK)
        match self.value():
            case "failed":
                return queryset.filter(failed)
            case "running":
                return queryset.filter(running)
            case "none":
                return queryset.filter(~failed, ~running)
        return queryset


@admin.register(ImageTask)
class ImageTaskAdmin(ReadOnlyAdminMixin, CappedCountMixin, admin.ModelAdmin):
    """The task records, as Glance's GET /v2/tasks shows them, for administrators
    (images.view_imagetask). Read-only: a task changes only by its worker."""

    list_display = ["id", "status", "image_link", "method", "owner", "created_at", "worker"]
    list_filter = ["status"]
    search_fields = ["owner"]  # shows the box; get_search_results decides
    search_help_text = "A task id, an image id, or exactly an owner."
    list_select_related = ["image"]
    readonly_fields = [
        "id",
        "type",
        "status",
        "image_link",
        "method",
        "uri",
        "owner",
        "user_id",
        "request_id",
        "worker",
        "heartbeat_at",
        "bytes_received",
        "message",
        "input",
        "result",
        "created_at",
        "updated_at",
        "expires_at",
    ]
    fields = readonly_fields

    def get_search_results(self, request, queryset, search_term):
        """Ids are UUIDs: a term that is none matches owners only, and never errors."""
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(owner=term)
        with contextlib.suppress(ValueError):
            match |= Q(pk=uuid.UUID(term)) | Q(image_id=uuid.UUID(term))
        return queryset.filter(match), False

    @admin.display(description="image")
    def image_link(self, task: ImageTask) -> str:
        if task.image is None:
            return "— (deleted)"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:images_image_change", args=[task.image_id]),
            image_label(task.image),
        )

    @admin.display(description="method")
    def method(self, task: ImageTask) -> str:
        return method_of(task)[0]

    @admin.display(description="URI")
    def uri(self, task: ImageTask) -> str:
        return method_of(task)[1] or "—"
