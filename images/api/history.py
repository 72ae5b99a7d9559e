"""History over the API (our extension, not in Glance):

- `GET /v2/images/{id}/history`, mixed into ImageViewSet: the image's transitions,
  for whoever may read the image (the same 404s as `GET /v2/images/{id}`);
- `GET /v2/deleted-images/{id}/history`: what happened to a deleted or purged image,
  for operators (`policy.can_read_deleted_history`).

Both page Glance-style, oldest first: `limit` (default 25, at most 1000), `marker`
(the `id` of the last row seen) and a `next` link while more rows follow.
"""

from datetime import datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from images import policy
from images.api import filters
from images.api.discovery import RequestIdMixin
from images.api.serializers import isotime
from images.errors import Forbidden
from images.history import (
    HistoryPage,
    deleted_image_find,
    image_history,
    purged_history,
    summary,
)
from images.models import PurgedImage

PARAMETERS = [
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 0, "maximum": filters.MAX_INT},
        description=f"Page size (default {filters.DEFAULT_LIMIT}, at most {filters.MAX_LIMIT}).",
    ),
    OpenApiParameter(
        "marker", OpenApiTypes.INT, description="`id` of the last history entry seen."
    ),
]

_TEXT = {"type": "string"}
ROW = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "source": {"type": "string", "nullable": True, "description": "null for a new image"},
        "target": _TEXT,
        "operation": _TEXT,
        "actor": _TEXT,
        "reason": _TEXT,
    },
    "required": ["id", "created_at", "source", "target", "operation", "actor", "reason"],
}
_PAGE = {
    "history": {"type": "array", "items": ROW},
    "first": _TEXT,
    "next": {**_TEXT, "description": "Present while more entries follow."},
}
HISTORY_RESPONSE = {
    "type": "object",
    "properties": {"image_id": {"type": "string", "format": "uuid"}, **_PAGE},
    "required": ["image_id", "history", "first"],
}
_NULLABLE = {"type": "string", "nullable": True}
DELETED_RESPONSE = {
    "type": "object",
    "properties": {
        "image": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "name": _NULLABLE,
                "owner": _NULLABLE,
                "size": {"type": "integer", "nullable": True},
                "checksum": _NULLABLE,
                "status": {"type": "string", "enum": ["pending_delete", "deleted", "purged"]},
                "created_at": {"type": "string", "format": "date-time"},
                "deleted_at": {**_NULLABLE, "format": "date-time"},
                "purged_at": {**_NULLABLE, "format": "date-time"},
            },
        },
        **_PAGE,
    },
    "required": ["image", "history", "first"],
}


def _paging(params) -> tuple[int | None, int]:
    """(marker, limit) from the query, checked as the image list checks them."""
    limit, marker = params.get("limit"), params.get("marker")
    limit = min(filters._int("limit", limit), filters.MAX_LIMIT) if limit else filters.DEFAULT_LIMIT
    return (filters._int("marker", marker) if marker else None), limit


def _body(base: str, page: HistoryPage, params) -> dict:
    rows = [
        {**row, "source": row["source"] or None, "created_at": _iso(row["created_at"])}
        for row in page.rows
    ]
    query = params.copy()
    query.pop("marker", None)
    body = {"history": rows, "first": base + (f"?{query.urlencode()}" if query else "")}
    if page.next_marker is not None:
        query["marker"] = str(page.next_marker)
        body["next"] = f"{base}?{query.urlencode()}"
    return body


def _iso(stamp: str) -> str:
    """The stored ISO time in Glance's form (UTC, whole seconds, Z)."""
    return isotime(datetime.fromisoformat(stamp))


class HistoryActions:
    """The history action of ImageViewSet."""

    @extend_schema(
        parameters=PARAMETERS,
        responses={200: OpenApiResponse(HISTORY_RESPONSE)},
        operation_id="image_history",
    )
    @action(detail=True, methods=["get"], url_path="history")
    def history(self, request, pk=None):
        """The image's status changes, oldest first (not in Glance): who, when, why."""
        # As retrieve: recovery staff read a recycle-bin entry, others get 404.
        image = self.get_object(include_deleted=True)
        marker, limit = _paging(request.query_params)
        page = image_history(image, marker=marker, limit=limit)
        body = _body(f"/v2/images/{image.pk}/history", page, request.query_params)
        self._paging = {"Next page": body.get("next")}
        return Response({"image_id": str(image.pk), **body})


class DeletedImageViewSet(RequestIdMixin, viewsets.ViewSet):
    """What happened to deleted and purged images (not in Glance)."""

    lookup_value_regex = "[^/]+"

    def get_view_name(self):
        return "Deleted image history"

    def browsable_links(self) -> list[tuple[str, str]]:
        return [(label, href) for label, href in getattr(self, "_paging", {}).items() if href]

    @extend_schema(
        parameters=PARAMETERS,
        responses={200: OpenApiResponse(DELETED_RESPONSE)},
        operation_id="deleted_image_history",
    )
    @action(detail=True, methods=["get"], url_path="history")
    def history(self, request, pk=None):
        """A deleted or purged image's status changes, oldest first: what is kept after
        the purge. Operators only (policy rule `get_deleted_image_history`)."""
        if not policy.can_read_deleted_history(request.user):
            raise Forbidden("You are not permitted to read the history of deleted images.")
        found = deleted_image_find(pk)
        marker, limit = _paging(request.query_params)
        if isinstance(found, PurgedImage):
            page = purged_history(found, marker=marker, limit=limit)
        else:
            page = image_history(found, marker=marker, limit=limit)
        image = summary(found)
        for key in ("created_at", "deleted_at", "purged_at"):
            image[key] = isotime(image[key])
        body = _body(f"/v2/deleted-images/{image['id']}/history", page, request.query_params)
        self._paging = {"Next page": body.get("next")}
        return Response({"image": image, **body})
