"""The transitions an administrator can run with a button on the image page or as
a bulk action, and which of them a user may press on an image now."""

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest

from images import services
from images.models import Image


@dataclass(frozen=True)
class AdminTransition:
    name: str  # the model's transition method, and the URL segment
    label: str
    permission: str
    operation: Callable[..., Image]  # a function of images.services
    done: str  # past tense, for messages

    def run(self, request: HttpRequest, image: Image) -> Image:
        return self.operation(image=image, actor=request.user)


ADMIN_TRANSITIONS = {
    t.name: t
    for t in [
        AdminTransition(
            "deactivate",
            "Deactivate",
            "images.deactivate_image",
            services.image_deactivate,
            "deactivated",
        ),
        AdminTransition(
            "reactivate",
            "Reactivate",
            "images.deactivate_image",
            services.image_reactivate,
            "reactivated",
        ),
        AdminTransition(
            "restore", "Restore", "images.restore_image", services.image_restore, "restored"
        ),
    ]
}


def available_transitions(user, image: Image) -> list[AdminTransition]:
    """The buttons this user may press on this image now: the image's status allows
    the transition (django-fsm) and the user holds its permission."""
    possible = {t.name for t in image.get_available_user_status_transitions(user)}
    return [
        t for t in ADMIN_TRANSITIONS.values() if t.name in possible and user.has_perm(t.permission)
    ]
