"""Members of shared images: offers to other projects, accepted or rejected by them."""

from django.db import transaction
from django.utils import timezone

from images import events, policy
from images.enums import MemberStatus, Visibility
from images.errors import Conflict, Forbidden, ImageNotFound, ImageTooLarge, InvalidInput
from images.models import Image, ImageMember
from images.policy import Actor
from images.services._transitions import _lock

IMAGE_MEMBER_QUOTA = 128  # Glance's image_member_quota default
ONLY_SHARED = "Only shared images have members."


def members_apply(image: Image) -> bool:
    """Whether `image` has members at all: only `shared` images do (Glance refuses
    every member call on the others; their old member rows wait, unused, for the
    image to be shared again)."""
    return image.visibility == Visibility.SHARED


def image_member_add(*, image: Image, actor: Actor, member: str) -> ImageMember:
    """Offer a `shared` image to a project (a user name); it starts `pending`."""
    if not policy.can_share(actor, image, "add_member"):
        raise Forbidden(f"You are not permitted to share image {image.id}.")
    if not members_apply(image):
        raise Forbidden(f"{ONLY_SHARED[:-1]}; image {image.id} is {image.visibility}.")
    if not member or len(member) > 255:
        raise InvalidInput("A member must be a project name of 1 to 255 characters.")
    with transaction.atomic():
        _lock(image.pk)
        if image.members.count() >= IMAGE_MEMBER_QUOTA:
            raise ImageTooLarge(f"Maximum number of image members exceeded: {IMAGE_MEMBER_QUOTA}.")
        found, created = ImageMember.objects.get_or_create(image=image, member=member)
        if not created:
            raise Conflict(f"Member {member} already associated with image {image.id}.")
        events.member_event("image.member.create", found)
    return found


def image_member_update(*, image: Image, actor: Actor, member: str, status: str) -> ImageMember:
    """The member (and only the member) accepts or rejects the offer, or resets it."""
    if status not in MemberStatus.values:
        raise InvalidInput(
            f"Invalid status: {status}. It must be one of: {', '.join(MemberStatus.values)}."
        )
    if not members_apply(image):
        raise Forbidden(f"Not allowed to update members for image {image.id}.")
    found = image.members.filter(member=member).first()
    if found is None:
        raise ImageNotFound(f"Member {member} not found for image {image.id}.")
    if not policy.can_answer_offer(actor, image, member):
        raise Forbidden("Only the shared member can update the status of a membership.")
    with transaction.atomic():
        ImageMember.objects.filter(pk=found.pk).update(status=status, updated_at=timezone.now())
        found.refresh_from_db()
        events.member_event("image.member.update", found)
    return found


def image_member_remove(*, image: Image, actor: Actor, member: str) -> None:
    if not policy.can_share(actor, image, "delete_member"):
        raise Forbidden(f"You are not permitted to change the members of image {image.id}.")
    if not members_apply(image):
        raise Forbidden(f"Not allowed to delete members for image {image.id}.")
    with transaction.atomic():
        found = image.members.filter(member=member)
        events.member_removed(found)  # built now, before the row goes; sent on commit
        deleted, _ = found.delete()
        if not deleted:
            raise ImageNotFound(f"Member {member} not found for image {image.id}.")
