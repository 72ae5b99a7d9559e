"""Who may do what to which image.

An actor is a signed-in user, or a string naming a trusted system actor (the
scrubber, an operator's management command), which may do anything. Owners are
Glance projects; here a project is a username.
"""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from images.enums import Visibility

Actor = AbstractBaseUser | AnonymousUser | str


def actor_name(actor: Actor) -> str:
    return actor if isinstance(actor, str) else actor.get_username()


def is_system(actor: Actor) -> bool:
    return isinstance(actor, str)


def _has(actor: Actor, perm: str) -> bool:
    return is_system(actor) or (actor.is_active and actor.is_staff and actor.has_perm(perm))


def project_of(actor: Actor) -> str | None:
    return None if is_system(actor) else actor.get_username()


def sees_all_images(actor: Actor) -> bool:
    return _has(actor, "images.view_image")


def can_manage(actor: Actor, image) -> bool:
    """Change metadata, upload data, tag, share."""
    return image.owner == project_of(actor) or _has(actor, "images.change_image")


def can_delete(actor: Actor, image) -> bool:
    return image.owner == project_of(actor) or _has(actor, "images.delete_image")


def can_deactivate(actor: Actor, image) -> bool:
    return image.owner == project_of(actor) or _has(actor, "images.deactivate_image")


def can_read_deactivated_data(actor: Actor) -> bool:
    """Glance lets only admins download a deactivated image's data."""
    return _has(actor, "images.deactivate_image")


def can_restore(actor: Actor) -> bool:
    return _has(actor, "images.restore_image")


def can_scrub(actor: Actor) -> bool:
    return is_system(actor) or (actor.is_active and actor.is_superuser)


def can_publicize(actor: Actor) -> bool:
    """Glance's `publicize_image` rule: only admins make images public."""
    return _has(actor, "images.change_image")


def can_set_owner(actor: Actor) -> bool:
    return _has(actor, "images.change_image")


def check_visibility(actor: Actor, visibility: str) -> bool:
    return visibility != Visibility.PUBLIC or can_publicize(actor)
