"""What a client asks before it asks about images: the API versions, the JSON schemas
glanceclient validates against, and what `/v2/info` says is on offer."""

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from images import services
from images.api import schemas

API_VERSIONS = ["v2.7", "v2.5", "v2.4", "v2.3", "v2.2", "v2.1", "v2.0"]


class RequestIdMixin:
    """Every Glance response carries an ``x-openstack-request-id``."""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["x-openstack-request-id"] = f"req-{uuid.uuid4()}"
        return response


class VersionsView(RequestIdMixin, APIView):
    """The API versions this registry speaks. Open to everyone."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    multiple_choices = False
    name = None  # the browsable pages' title; set per URL

    @extend_schema(responses={200: dict, 300: dict})
    def get(self, request):
        href = request.build_absolute_uri("/v2/")
        versions = [
            {
                "id": version,
                "status": "CURRENT" if i == 0 else "SUPPORTED",
                "links": [{"rel": "self", "href": href}],
            }
            for i, version in enumerate(API_VERSIONS)
        ]
        code = status.HTTP_300_MULTIPLE_CHOICES if self.multiple_choices else status.HTTP_200_OK
        return Response({"versions": versions}, status=code)


class SchemaView(RequestIdMixin, APIView):
    """A JSON schema the Glance clients fetch (glanceclient validates against `image`)."""

    name = "image"

    @extend_schema(responses=dict)
    def get(self, request):
        return Response(schemas.SCHEMAS[self.name]())


class InfoImportView(RequestIdMixin, APIView):
    """The import methods this registry runs (IMAGES_IMPORT_METHODS)."""

    @extend_schema(responses=dict)
    def get(self, request):
        methods = {
            "description": "Import methods available.",
            "type": "array",
            "value": services.import_methods(),
        }
        return Response({"import-methods": methods})


class InfoStoresView(RequestIdMixin, APIView):
    """One store, the default."""

    @extend_schema(responses=dict)
    def get(self, request):
        return Response({"stores": [{"id": "default", "default": True}]})


__all__ = ["InfoImportView", "InfoStoresView", "RequestIdMixin", "SchemaView", "VersionsView"]
