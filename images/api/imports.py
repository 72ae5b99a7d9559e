"""Interoperable import on the wire (Glance API v2.6+): PUT /v2/images/{id}/stage,
POST /v2/images/{id}/import, GET /v2/images/{id}/tasks, and the tasks API
(/v2/tasks, /v2/tasks/{id}) with Glance's task records.

The views only parse and answer: images/services/imports.py and import_worker.py do the work, and a
django-tasks worker the long part of it.
"""

from django.core.exceptions import ValidationError
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
        tasks = selectors.tasks_visible_to(request.user)
        if "status" in request.query_params:
            tasks = tasks.filter(status=request.query_params["status"])
        if "type" in request.query_params:
            tasks = tasks.filter(type=request.query_params["type"])
        return Response(
            {
                "tasks": [task_representation(t) for t in tasks[:1000]],
                "first": "/v2/tasks",
                "schema": "/v2/schemas/tasks",
            }
        )

    @extend_schema(responses=dict, operation_id="tasks_show")
    def retrieve(self, request, pk=None):
        try:
            task = selectors.tasks_visible_to(request.user).get(pk=pk)
        except (ImageTask.DoesNotExist, ValidationError, ValueError):
            raise ImageNotFound(f"Task with identifier {pk} not found") from None
        return Response(task_representation(task))
