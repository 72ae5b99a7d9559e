"""The members of a shared image on the wire: GET/POST /v2/images/{id}/members and
GET/PUT/DELETE /v2/images/{id}/members/{member_id}, mixed into ImageViewSet."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from images import selectors, services
from images.api.serializers import MemberSerializer, MemberStatusSerializer, member_representation
from images.errors import Forbidden, ImageNotFound
from images.models import Image


class MemberActions:
    """The member actions of ImageViewSet. A member reads the image (to answer the
    offer) whatever its answer so far."""

    def _offered_image(self) -> Image:
        image = selectors.image_get_visible(self.request.user, self.kwargs["pk"])
        self._image = image
        return image

    @extend_schema(responses=dict, operation_id="image_members_list")
    @action(detail=True, methods=["get"], url_path="members", serializer_class=MemberSerializer)
    def members(self, request, pk=None):
        image = self._offered_image()
        if not services.members_apply(image):
            raise Forbidden(
                f"Not allowed to list members for image {image.pk}: {services.ONLY_SHARED}"
            )
        members = selectors.image_members_visible_to(request.user, image)
        return Response(
            {
                "members": [member_representation(m) for m in members],
                "schema": "/v2/schemas/members",
            }
        )

    @extend_schema(request=MemberSerializer, responses=dict)
    @members.mapping.post
    def add_member(self, request, pk=None):
        serializer = MemberSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = services.image_member_add(
            image=self.get_object(), actor=request.user, member=serializer.validated_data["member"]
        )
        return Response(member_representation(member))

    def _member(self, image: Image, member_id: str):
        if not services.members_apply(image):
            raise ImageNotFound(services.ONLY_SHARED)  # Glance's 404: no leak either way
        found = selectors.image_members_visible_to(self.request.user, image).filter(
            member=member_id
        )
        member = found.first()
        if member is None:
            raise ImageNotFound(f"Member {member_id} not found for image {image.pk}.")
        return member

    @extend_schema(responses=dict, operation_id="image_member_show")
    @action(
        detail=True,
        methods=["get"],
        url_path=r"members/(?P<member_id>[^/]+)",
        serializer_class=MemberStatusSerializer,
    )
    def member(self, request, pk=None, member_id=None):
        return Response(member_representation(self._member(self._offered_image(), member_id)))

    @extend_schema(request=MemberStatusSerializer, responses=dict)
    @member.mapping.put
    def update_member(self, request, pk=None, member_id=None):
        serializer = MemberStatusSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = services.image_member_update(
            image=self._offered_image(),
            actor=request.user,
            member=member_id,
            status=serializer.validated_data["status"],
        )
        return Response(member_representation(member))

    @extend_schema(responses={204: None})
    @member.mapping.delete
    def remove_member(self, request, pk=None, member_id=None):
        services.image_member_remove(image=self.get_object(), actor=request.user, member=member_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
