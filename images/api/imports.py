"""Interoperable import on the wire (Glance API v2.6+): PUT /v2/images/{id}/stage,
POST /v2/images/{id}/import, GET /v2/images/{id}/tasks, and the tasks API
(/v2/tasks, /v2/tasks/{id}) with Glance's task records.

The views only parse and answer: images/services/imports.py and import_worker.py do the work, and a
django-tasks worker the long part of it.
"""

from django.core.exceptions import ValidationError
from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from images import selectors, services
from images.api.discovery import RequestIdMixin
from images.api.parsers import OctetStreamParser, upload_stream
from images.errors import ImageNotFound, InvalidInput
from images.models import ImageTask

IMPORT_METHODS_HEADER = "OpenStack-image-import-methods"
# Glance's limit_param_default and api_limit_max.
TASKS_PAGE, TASKS_PAGE_MAX = 25, 1000


def _time(value) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def task_representation(task: ImageTask) -> dict:
    """A task as Glance shows one (glance/api/v2/tasks.py)."""
    return {
        "id": str(task.pk),
        "type": task.type,
        "status": task.status,
        "input": task.input,
        "result": task.result,
        "owner": task.owner,
        "message": task.message,
        "image_id": str(task.image_id) if task.image_id else task.input.get("image_id"),
        "request_id": task.request_id,
        "user_id": task.user_id,
        "expires_at": _time(task.expires_at),
        "created_at": _time(task.created_at),
        "updated_at": _time(task.updated_at),
        "self": f"/v2/tasks/{task.pk}",
        "schema": "/v2/schemas/task",
    }


class ImportActions:
    """The import actions of ImageViewSet (mixed in there, beside upload)."""

    @extend_schema(request={"application/octet-stream": bytes}, responses={204: None})
    @action(detail=True, methods=["put"], url_path="stage", parser_classes=[OctetStreamParser])
    def stage(self, request, pk=None):
        """Stage the image's data for a glance-direct import (queued → uploading)."""
        stream, declared_size = upload_stream(request)
        services.image_stage(
            image=self.get_object(), actor=request.user, stream=stream, declared_size=declared_size
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=dict, responses={202: None})
    @action(detail=True, methods=["post"], url_path="import")
    def import_(self, request, pk=None):
        """Import the image's data: `{"method": {"name": "web-download", "uri": ...}}`
        or `{"method": {"name": "glance-direct"}}` after a stage."""
        body = request.data
        method = body.get("method") if isinstance(body, dict) else None
        if not isinstance(method, dict) or not isinstance(method.get("name"), str):
            raise InvalidInput("The import request needs a 'method' with a 'name'.")
        services.image_import(
            image=self.get_object(),
            actor=request.user,
            method=method["name"],
            uri=method.get("uri"),
            stores=body.get("stores"),
            all_stores=body.get("all_stores", False),
            all_stores_must_succeed=body.get("all_stores_must_succeed", True),
            request_id=request.META.get("HTTP_X_OPENSTACK_REQUEST_ID", ""),
        )
        return Response(status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=dict, operation_id="image_tasks_list")
    @action(detail=True, methods=["get"], url_path="tasks")
    def tasks(self, request, pk=None):
        """The image's import tasks, newest first."""
        image = self.get_object()
        return Response({"tasks": [task_representation(t) for t in image.tasks.all()]})


class TaskViewSet(RequestIdMixin, viewsets.GenericViewSet):
    """Glance's task records: what each import did, until they expire."""

    queryset = ImageTask.objects.none()  # lookups go through the selectors
    lookup_value_regex = "[^/]+"

    def get_view_name(self):
        names = {"List": "Tasks", "Instance": "Task"}
        return names.get(getattr(self, "suffix", None)) or super().get_view_name()

    @extend_schema(responses=dict, operation_id="tasks_list")
    def list(self, request):
        """Newest first, a page at a time as Glance pages them: `limit` (25 by
        default, at most 1000) and `marker` (the last task of the previous page)."""
        query = request.query_params
        tasks = selectors.tasks_visible_to(request.user)
        if "status" in query:
            tasks = tasks.filter(status=query["status"])
        if "type" in query:
            tasks = tasks.filter(type=query["type"])
        limit = _limit(query.get("limit"))
        if "marker" in query:
            tasks = _after(tasks, query["marker"])
        page = list(tasks.order_by("-created_at", "id")[:limit])
        body = {
            "tasks": [task_representation(t) for t in page],
            "first": "/v2/tasks",
            "schema": "/v2/schemas/tasks",
        }
        if len(page) == limit:
            rest = query.copy()
            rest["marker"] = str(page[-1].pk)
            body["next"] = f"/v2/tasks?{rest.urlencode()}"
        return Response(body)

    @extend_schema(responses=dict, operation_id="tasks_show")
    def retrieve(self, request, pk=None):
        try:
            task = selectors.tasks_visible_to(request.user).get(pk=pk)
        except (ImageTask.DoesNotExist, ValidationError, ValueError):
            raise ImageNotFound(f"Task with identifier {pk} not found") from None
        return Response(task_representation(task))


def _limit(raw: str | None) -> int:
    if raw is None:
        return TASKS_PAGE
    if not raw.isdigit() or not 0 < int(raw) <= TASKS_PAGE_MAX:
        raise InvalidInput(f"limit must be a whole number from 1 to {TASKS_PAGE_MAX}")
    return int(raw)


def _after(tasks, marker: str):
    """The tasks after `marker` in list order (newest first, ties by id)."""
    try:
        last = tasks.get(pk=marker)
    except (ImageTask.DoesNotExist, ValidationError, ValueError):
        raise InvalidInput(f"Invalid marker {marker}: no such task") from None
    return tasks.filter(
        Q(created_at__lt=last.created_at) | Q(created_at=last.created_at, id__gt=last.pk)
    )
