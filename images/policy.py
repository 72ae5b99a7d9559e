"""Who may do what to which image, now.

An actor is a signed-in user, or a string naming a trusted system actor (the
scrubber, an operator's management command), which may do anything. Owners are
Glance projects; here a project is a username. A Django permission means what its
name says, for whoever holds it: Recovery staff restore because they hold
`images.restore_image`, not because they are staff.

`allowed_actions(actor, image)` is the one answer to "what may this actor do to
this image now": the actor's right (`may`) and the image's status (the model's own
transitions, through django-fsm's `can_proceed`). The admin's buttons, the browsable
API's links and the services' checks all ask it, so a button is shown exactly when
the operation would be allowed.
"""

from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django_fsm import can_proceed

from images.enums import DELETED_STATUSES, Status, Visibility

Actor = AbstractBaseUser | AnonymousUser | str


class Action(StrEnum):
    """What an actor can do to one image."""

    EDIT = "edit"  # metadata, tags, members
    UPLOAD = "upload"
    DOWNLOAD = "download"
    DEACTIVATE = "deactivate"
    REACTIVATE = "reactivate"
    DELETE = "delete"
    RESTORE = "restore"
    SCRUB = "scrub"


def actor_name(actor: Actor) -> str:
    return actor if isinstance(actor, str) else actor.get_username()


def is_system(actor: Actor) -> bool:
    return isinstance(actor, str)


def _has(actor: Actor, perm: str) -> bool:
    # has_perm is False for inactive users and True for active superusers.
    return is_system(actor) or actor.has_perm(perm)


def project_of(actor: Actor) -> str | None:
    return None if is_system(actor) else actor.get_username()


def _owns(actor: Actor, image) -> bool:
    return image.owner is not None and image.owner == project_of(actor)


def sees_all_images(actor: Actor) -> bool:
    return _has(actor, "images.view_image")


def can_manage(actor: Actor, image) -> bool:
    """Change metadata, upload data, tag, share."""
    return _owns(actor, image) or _has(actor, "images.change_image")


def can_delete(actor: Actor, image) -> bool:
    return _owns(actor, image) or _has(actor, "images.delete_image")


def can_deactivate(actor: Actor, image) -> bool:
    return _owns(actor, image) or _has(actor, "images.deactivate_image")


def can_read_deactivated_data(actor: Actor) -> bool:
    """Glance lets only admins download a deactivated image's data."""
    return _has(actor, "images.deactivate_image")


def can_restore(actor: Actor) -> bool:
    return _has(actor, "images.restore_image")


def can_scrub(actor: Actor) -> bool:
    return _has(actor, "images.scrub_image")


def can_publicize(actor: Actor) -> bool:
    """Glance's `publicize_image` rule: only admins make images public."""
    return _has(actor, "images.change_image")


def can_set_owner(actor: Actor) -> bool:
    return _has(actor, "images.change_image")


def check_visibility(actor: Actor, visibility: str) -> bool:
    return visibility != Visibility.PUBLIC or can_publicize(actor)


def may(actor: Actor, image, action: Action) -> bool:
    """The actor's right to `action` on `image`, whatever its status. The caller
    has already found the image visible to the actor."""
    match action:
        case Action.EDIT | Action.UPLOAD:
            return can_manage(actor, image)
        case Action.DOWNLOAD:
            return image.status != Status.DEACTIVATED or can_read_deactivated_data(actor)
        case Action.DEACTIVATE | Action.REACTIVATE:
            return can_deactivate(actor, image)
        case Action.DELETE:
            return can_delete(actor, image)
        case Action.RESTORE:
            return can_restore(actor)
        case Action.SCRUB:
            return can_scrub(actor)
    raise ValueError(action)


def status_allows(image, action: Action) -> bool:
    """Whether the image's status allows `action` now: the model's transitions say."""
    match action:
        case Action.EDIT:
            return image.status not in DELETED_STATUSES
        case Action.UPLOAD:
            return can_proceed(image.begin_upload)
        case Action.DOWNLOAD:
            return image.status in (Status.ACTIVE, Status.DEACTIVATED)
        case Action.DEACTIVATE:
            return can_proceed(image.deactivate)
        case Action.REACTIVATE:
            return can_proceed(image.reactivate)
        case Action.DELETE:
            # Protection is the image's state, like its status: no one deletes it.
            return can_proceed(image.mark_deleted) and not image.protected
        case Action.RESTORE:
            # Once the scrubber has begun removing data, the bytes may be partly gone.
            return can_proceed(image.restore) and image.scrub_started_at is None
        case Action.SCRUB:
            return can_proceed(image.scrub)
    raise ValueError(action)


def allowed_actions(actor: Actor, image) -> frozenset[Action]:
    """What `actor` may do to `image` now."""
    return frozenset(
        action for action in Action if may(actor, image, action) and status_allows(image, action)
    )
