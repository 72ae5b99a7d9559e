"""Deactivate and reactivate: an active image's data made unreadable, and back."""

from django.db import transaction
from django_fsm import can_proceed

from images import policy
from images.enums import Operation, Status
from images.errors import Forbidden
from images.models import Image
from images.policy import Action, Actor
from images.services._transitions import _lock, _transition


def image_deactivate(*, image: Image, actor: Actor) -> Image:
    return _toggle_activation(image, actor, "deactivate", Status.DEACTIVATED, Operation.DEACTIVATE)


def image_reactivate(*, image: Image, actor: Actor) -> Image:
    return _toggle_activation(image, actor, "reactivate", Status.ACTIVE, Operation.REACTIVATE)


def _toggle_activation(image: Image, actor: Actor, name: str, target: str, operation: str) -> Image:
    if not policy.may(actor, image, Action(name)):
        raise Forbidden(f"You are not permitted to {name} image {image.id}.")
    with transaction.atomic():
        fresh = _lock(image.pk)
        if fresh.status == target:
            return fresh  # Glance answers these repeats with success and changes nothing
        if not can_proceed(getattr(fresh, name)):
            raise Forbidden(f"Not allowed to {name} image in status '{fresh.status}'")
        _transition(fresh, name, operation=operation, actor=actor)
    return fresh
