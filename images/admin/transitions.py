"""The transitions an administrator can run with a button on the image page or as
a bulk action, and which of them a user may press on an image now."""

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest

from images import policy, services
from images.models import Image
from images.policy import Action


@dataclass(frozen=True)
class AdminTransition:
    name: str  # the model's transition method, and the URL segment
    label: str
    action: Action  # what policy.allowed_actions must grant for the button to show
    operation: Callable[..., Image]  # a function of images.services
    done: str  # past tense, for messages

    def run(self, request: HttpRequest, image: Image) -> Image:
        return self.operation(image=image, actor=request.user)


ADMIN_TRANSITIONS = {
    t.name: t
    for t in [
        AdminTransition(
            "deactivate", "Deactivate", Action.DEACTIVATE, services.image_deactivate, "deactivated"
        ),
        AdminTransition(
            "reactivate", "Reactivate", Action.REACTIVATE, services.image_reactivate, "reactivated"
        ),
        AdminTransition("restore", "Restore", Action.RESTORE, services.image_restore, "restored"),
    ]
}


def available_transitions(user, image: Image) -> list[AdminTransition]:
    """The buttons this user may press on this image now, as the policy answers."""
    allowed = policy.allowed_actions(user, image)
    return [t for t in ADMIN_TRANSITIONS.values() if t.action in allowed]
