"""The Glance Image API v2 on DRF.

Views translate HTTP to the domain and back: they find the image the caller may
see, call one service, and render the result. Refusals are raised by the services
and turned into Glance's responses by errors.glance_exception_handler.
"""

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from images import policy, selectors, services
from images.api import deprecation, filters, openapi
from images.api.discovery import RequestIdMixin
from images.api.downloads import ImageDataResponse, RemoteDataResponse, byte_range
from images.api.errors import error_response
from images.api.history import HistoryActions
from images.api.imports import IMPORT_METHODS_HEADER, ImportActions
from images.api.locations import add_location_body, split_location_operations
from images.api.members import MemberActions
from images.api.parsers import (
    GlanceJSONParser,
    JSONPatch20Parser,
    JSONPatch21Parser,
    OctetStreamParser,
    patch_operations,
    upload_stream,
)
from images.api.renderers import OctetStreamRenderer, RegistryBrowsableAPIRenderer
from images.api.serializers import (
    ImageSerializer,
    image_path,
    image_representation,
    update_from_patch,
    validate_tag,
)
from images.errors import Forbidden, InvalidInput
from images.models import Image
from images.policy import Action

# What the browsable page of an image offers, each shown when policy.allowed_actions
# says the signed-in user may do it now (the admin's buttons ask the same question).
ACTION_LINKS = [
    (Action.DOWNLOAD, "Image data (download)", "{base}/file"),
    (Action.UPLOAD, "Upload data (PUT)", "{base}/file"),
    (Action.DEACTIVATE, "Deactivate (POST)", "{base}/actions/deactivate"),
    (Action.REACTIVATE, "Reactivate (POST)", "{base}/actions/reactivate"),
    (Action.RESTORE, "Restore (POST)", "{base}/actions/restore"),
    (Action.DELETE, "Delete (DELETE)", "{base}"),
]

# The browsable page's forms on an image, by the same answer.
FORM_ACTIONS = {"DELETE": Action.DELETE, "PATCH": Action.EDIT, "PUT": Action.UPLOAD}


class ImageViewSet(
    RequestIdMixin, ImportActions, MemberActions, HistoryActions, viewsets.GenericViewSet
):
    """Images: list and create them; show, patch and delete one.

    PATCH takes `application/openstack-images-v2.1-json-patch` (or v2.0), e.g.
    `[{"op": "replace", "path": "/name", "value": "new name"}]`.
    """

    serializer_class = ImageSerializer
    queryset = Image.objects.none()  # lookups go through the selectors
    lookup_value_regex = "[^/]+"
    # The browsable renderer offers its HTML create form only if a form parser is
    # listed here; get_parsers() decides what each request really accepts.
    parser_classes = [GlanceJSONParser, FormParser, MultiPartParser]

    def get_view_name(self):
        # The browsable pages' titles: "Images" and "Image", not DRF's "Image List".
        names = {"List": "Images", "Instance": "Image"}
        return names.get(getattr(self, "suffix", None)) or super().get_view_name()

    def get_parsers(self):
        method = getattr(self.request, "method", None)
        if method == "PATCH":
            return [JSONPatch21Parser(), JSONPatch20Parser()]
        if method == "POST" and getattr(self, "action_map", {}).get("post") == "create":
            # The browsable page's create form posts HTML form data.
            return [GlanceJSONParser(), FormParser(), MultiPartParser()]
        return [GlanceJSONParser()]

    def get_object(self, *, include_deleted: bool = False, include_scrubbed: bool = False) -> Image:
        image = selectors.image_get_visible(
            self.request.user,
            self.kwargs["pk"],
            include_deleted=include_deleted,
            include_scrubbed=include_scrubbed,
        )
        self._image = image
        return image

    def _show(self, image: Image, code=status.HTTP_200_OK, headers=None) -> Response:
        image = Image.objects.prefetch_related("tags", "properties").get(pk=image.pk)
        self._image = image
        body = image_representation(image, locations=self._locations([image]).get(image.pk))
        return Response(body, status=code, headers=headers)

    def _locations(self, images: list[Image]) -> dict:
        """The locations the caller may see of each image, where the operator shows them."""
        if not (settings.IMAGES_SHOW_MULTIPLE_LOCATIONS or settings.IMAGES_SHOW_DIRECT_URL):
            return {}
        found = selectors.image_active_locations([image.pk for image in images])
        return {
            image.pk: services.locations_shown_to(self.request.user, image, found[image.pk])
            for image in images
        }

    def browsable_offers(self, method: str) -> bool:
        """Whether the browsable page of an image shows the form for `method`."""
        image = getattr(self, "_image", None)
        action = FORM_ACTIONS.get(method)
        if image is None or action is None:
            return True
        return action in policy.allowed_actions(self.request.user, image)

    def browsable_links(self) -> list[tuple[str, str]]:
        """Links the browsable page shows beside an image: its data and its actions."""
        image = getattr(self, "_image", None)
        if image is None:
            paging = getattr(self, "_paging", {})
            return [(label, href) for label, href in paging.items() if href] + [
                ("Schema of an image", "/v2/schemas/image"),
                ("API documentation", "/api/docs/"),
            ]
        base = image_path(image.pk)
        allowed = policy.allowed_actions(self.request.user, image)
        # The history page of an image pages too.
        paging = [(label, href) for label, href in getattr(self, "_paging", {}).items() if href]
        links = [*paging, ("Members", f"{base}/members"), ("History", f"{base}/history")]
        links += [
            (label, url.format(base=base))
            for action, label, url in ACTION_LINKS
            if action in allowed
        ]
        return links

    # --- the collection ---------------------------------------------------------------

    @extend_schema(
        parameters=openapi.LIST_PARAMETERS,
        responses=dict,
        operation_id="images_list",
    )
    def list(self, request):
        if not policy.can_list(request.user):
            raise Forbidden("You are not permitted to list images.")
        images = filters.listing(request.user, request.query_params)
        page = filters.page(images, request.query_params)
        locations = self._locations(page.images)
        query = request.query_params.copy()
        query.pop("marker", None)
        body = {
            "images": [
                image_representation(
                    image,
                    tags=page.tags[image.pk],
                    properties=page.properties[image.pk],
                    locations=locations.get(image.pk),
                )
                for image in page.images
            ],
            "first": "/v2/images" + (f"?{query.urlencode()}" if query else ""),
            "schema": "/v2/schemas/images",
        }
        if page.full:
            query["marker"] = str(page.images[-1].pk)
            body["next"] = f"/v2/images?{query.urlencode()}"
        self._paging = {"First page": body["first"], "Next page": body.get("next")}
        return Response(body)

    # The contract is JSON; the browsable page's HTML form is a convenience for browsers.
    @extend_schema(request={"application/json": ImageSerializer}, responses={201: ImageSerializer})
    def create(self, request):
        if request.stream is None:
            # Glance's answer to a create without a body; `{}` is an image with defaults.
            raise InvalidInput("Body expected in request.")
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        if "id" in fields:
            fields["image_id"] = fields.pop("id")
        image = services.image_create(actor=request.user, **fields)
        headers = {
            "Location": request.build_absolute_uri(image_path(image.pk)),
            # openstacksdk and the openstack CLI read how this image may be imported.
            IMPORT_METHODS_HEADER: ",".join(services.import_methods()),
        }
        return self._show(image, status.HTTP_201_CREATED, headers=headers)

    # --- one image -------------------------------------------------------------------------

    @extend_schema(responses=ImageSerializer, operation_id="images_show")
    def retrieve(self, request, pk=None):
        # Recovery staff open a recycle-bin entry before restoring it; others get 404.
        return self._show(self.get_object(include_deleted=True))

    @extend_schema(request=openapi.PATCH_REQUEST, responses=ImageSerializer)
    def partial_update(self, request, pk=None):
        """Operations on /locations go to the locations service, after the others: a
        patch may set the formats that the activation by a location needs. They are
        checked first, so that a refused location changes no metadata either."""
        image = self.get_object()
        style, operations = patch_operations(request)
        location_changes, operations = split_location_operations(style, operations)
        changes = update_from_patch(image, style, operations)
        if location_changes:
            services.image_locations_check(
                image=image, actor=request.user, changes=location_changes
            )
        if operations or not location_changes:
            image = services.image_update(image=image, actor=request.user, **changes)
        if location_changes:
            image = services.image_locations_change(
                image=image, actor=request.user, changes=location_changes
            )
        return self._show(image)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.image_delete(image=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --- data --------------------------------------------------------------------------------

    @extend_schema(responses={(200, "application/octet-stream"): bytes, 204: None, 206: bytes})
    @action(
        detail=True,
        methods=["get"],
        url_path="file",
        parser_classes=[OctetStreamParser],
        renderer_classes=[JSONRenderer, RegistryBrowsableAPIRenderer, OctetStreamRenderer],
    )
    def file(self, request, pk=None):
        """The image's data: 200, 206 for a `Range`, 204 when it has none."""
        image = self.get_object()
        data = services.image_download(image=image, actor=request.user)
        if data is None or data.empty:
            return HttpResponse(status=status.HTTP_204_NO_CONTENT)
        if data.external_url:
            response = RemoteDataResponse(data, content_type="application/octet-stream")
            if data.checksum:
                response["Content-MD5"] = data.checksum
            return response
        first, last, code = 0, data.size - 1, status.HTTP_200_OK
        requested = request.META.get("HTTP_RANGE")
        if requested:
            served = byte_range(requested, data.size)
            if served is None:
                return error_response(
                    request,
                    status.HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE,
                    f"Requested range {requested!r} is not satisfiable for {data.size} bytes.",
                    headers={"Content-Range": f"bytes */{data.size}"},
                )
            (first, last), code = served, status.HTTP_206_PARTIAL_CONTENT
        length = last - first + 1
        file = data.open(start=first, length=length)
        server = request.META.get("SERVER_SOFTWARE", "")
        response = ImageDataResponse(
            file,
            length=length,
            # Only a file on disk can be sent with sendfile(2); gunicorn's stops at
            # Content-Length, other servers' file wrappers may read on to the end.
            sendfile=data.local_path() is not None
            and (last == data.size - 1 or server.startswith("gunicorn")),
            sock=request.META.get("gunicorn.socket"),
            status=code,
            content_type="application/octet-stream",
        )
        if code == status.HTTP_206_PARTIAL_CONTENT:
            response["Content-Range"] = f"bytes {first}-{last}/{data.size}"
        if data.checksum:
            response["Content-MD5"] = data.checksum
        return response

    @extend_schema(request={"application/octet-stream": bytes}, responses={204: None})
    @file.mapping.put
    def upload(self, request, pk=None):
        """Upload the image's data (application/octet-stream), streamed to the store."""
        stream, declared_size = upload_stream(request)
        image = self.get_object()
        services.image_upload(
            image=image, actor=request.user, stream=stream, declared_size=declared_size
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --- locations (API 2.17) ------------------------------------------------------------------

    @extend_schema(request=openapi.ADD_LOCATION_REQUEST, responses={202: None})
    @action(detail=True, methods=["post"], url_path="locations")
    def locations(self, request, pk=None):
        """Give a queued image its data at an http(s) URL: `{"url": ..., "validation_data":
        {"os_hash_algo": "sha512", "os_hash_value": ...}}`. Glance answers 202 and hashes
        the data in a task; here the image is active when the 202 is sent, its hashes
        those given (not computed from the data)."""
        url, validation_data = add_location_body(request.data)
        services.image_location_add(
            image=self.get_object(), actor=request.user, url=url, validation_data=validation_data
        )
        return Response(status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        responses={200: OpenApiResponse(openapi.LOCATIONS_RESPONSE)},
        operation_id="image_locations_list",
    )
    @locations.mapping.get
    def list_locations(self, request, pk=None):
        """The image's locations (Glance's `fetch_image_location`: the service role)."""
        rows = services.image_locations_fetch(image=self.get_object(), actor=request.user)
        return Response([{"url": services.shown_url(r), "metadata": r.metadata} for r in rows])

    # --- tags and actions ----------------------------------------------------------------------

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["put"], url_path=r"tags/(?P<tag>[^/]+)")
    def tag(self, request, pk=None, tag=None):
        services.image_add_tag(image=self.get_object(), actor=request.user, tag=validate_tag(tag))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={204: None})
    @tag.mapping.delete
    def untag(self, request, pk=None, tag=None):
        services.image_remove_tag(image=self.get_object(), actor=request.user, tag=tag)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"], url_path="actions/deactivate")
    def deactivate(self, request, pk=None):
        services.image_deactivate(image=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"], url_path="actions/reactivate")
    def reactivate(self, request, pk=None):
        services.image_reactivate(image=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=openapi.DEPRECATE_REQUEST, responses=ImageSerializer)
    @action(detail=True, methods=["post"], url_path="actions/deprecate")
    def deprecate(self, request, pk=None):
        """Set the image's deprecation schedule (not in Glance; images.api.deprecation):
        the body is the whole schedule, `{}` clears it. Answers the image."""
        schedule = deprecation.schedule_from_body(request.data)
        image = services.image_deprecate(image=self.get_object(), actor=request.user, **schedule)
        return self._show(image)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"], url_path="actions/restore")
    def restore(self, request, pk=None):
        """Bring back a pending_delete image (not in Glance; needs the restore permission)."""
        # A scrubbed image is found too, so the answer says it is too late (409).
        image = self.get_object(include_deleted=True, include_scrubbed=True)
        services.image_restore(image=image, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


__all__ = ["ImageViewSet"]
