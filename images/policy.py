"""Who may do what to which image, now.

An actor is a signed-in Django user, a Keystone identity (`images.identity`), or a
string naming a trusted system actor (the scrubber, an operator's management
command), which may do anything. Owners are Glance projects: for a Django user the
username, for a Keystone caller the token's project id.

A Django user's rights are Django permissions, meaning what their names say for
whoever holds them: Recovery staff restore because they hold `images.restore_image`,
not because they are staff. A Keystone caller's rights are Glance's policy rules
(`images.glance_rules`, oslo.policy, overridable by the operator's policy.yaml),
asked with the image as Glance's target: its owner as `project_id`, the caller's
project as `member_id` when the image is shared with it, its visibility.

`allowed_actions(actor, image)` is the one answer to "what may this actor do to
this image now": the actor's right (`may`) and the image's status (the model's own
transitions, through django-fsm's `can_proceed`). The admin's buttons, the browsable
API's links and the services' checks all ask it, so a button is shown exactly when
the operation would be allowed.
"""

from collections.abc import Iterator, Mapping
from enum import StrEnum

from django.conf import settings
from django_fsm import can_proceed

from images import glance_rules
from images.enums import DELETED_STATUSES, Status, Visibility
from images.identity import Actor, KeystoneIdentity


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
    if isinstance(actor, KeystoneIdentity):
        return actor.project_id
    if is_system(actor) or settings.KEYSTONE_AUTHTOKEN:
        # In Keystone mode projects are Keystone's ids, and a Django user (staff
        # signed in to the admin) stands for no project: an image they create has
        # no owner until they name one.
        return None
    return actor.get_username()


def _owns(actor: Actor, image) -> bool:
    return image.owner is not None and image.owner == project_of(actor)


class _ImageTarget(Mapping):
    """An image as Glance's policy target. `member_id` costs a query, so it is only
    looked up when a rule asks for it."""

    def __init__(self, actor: KeystoneIdentity, image=None, **values):
        self._actor = actor
        self._image = image
        self._values = values
        if image is not None:
            self._values.setdefault("id", str(image.pk))
            self._values.setdefault("project_id", image.owner)
            self._values.setdefault("owner", image.owner)
            self._values.setdefault("visibility", image.visibility)

    def __getitem__(self, key: str):
        if key == "member_id" and key not in self._values:
            self._values[key] = self._member_id()
        return self._values[key]

    def _member_id(self) -> str | None:
        project = self._actor.project_id
        if self._image is None or project is None:
            return None
        return project if self._image.members.filter(member=project).exists() else None

    def __iter__(self) -> Iterator[str]:
        return iter({*self._values, "member_id"})

    def __len__(self) -> int:
        return len({*self._values, "member_id"})


def _rule(actor: KeystoneIdentity, rule: str, image=None, **target) -> bool:
    return glance_rules.allows(rule, _ImageTarget(actor, image, **target), actor.credentials())


def _keystone(actor: Actor) -> bool:
    return isinstance(actor, KeystoneIdentity)


def sees_all_images(actor: Actor) -> bool:
    if _keystone(actor):
        return _rule(actor, "context_is_admin")
    return _has(actor, "images.view_image")


def can_list(actor: Actor) -> bool:
    """Glance's `get_images`; for Django users, what they see is their whole answer."""
    if _keystone(actor):
        return _rule(actor, "get_images", project_id=actor.project_id)
    return True


def can_read(actor: Actor, image) -> bool:
    """Glance's `get_image`, beyond what the visibility of the image already allows.

    An image in the recycle bin is read by its keepers (`can_restore`) instead: the
    bin is cloud-wide, so an image_recovery holder of project alpha restores beta's
    private image, which `get_image` (a project rule) would hide from them."""
    if _keystone(actor):
        if image.status in DELETED_STATUSES:
            return can_restore(actor)
        return _rule(actor, "get_image", image)
    return True


def can_create(actor: Actor, owner: str | None, visibility: str) -> bool:
    if _keystone(actor):
        return _rule(actor, "add_image", project_id=owner, owner=owner, visibility=visibility)
    return True


def can_manage(actor: Actor, image) -> bool:
    """Change metadata, tag, share."""
    if _keystone(actor):
        return _rule(actor, "modify_image", image)
    return _owns(actor, image) or _has(actor, "images.change_image")


def can_upload(actor: Actor, image) -> bool:
    if _keystone(actor):
        return _rule(actor, "upload_image", image)
    return can_manage(actor, image)


def can_share(actor: Actor, image, rule: str) -> bool:
    """Add (`add_member`) or remove (`delete_member`) a member."""
    if _keystone(actor):
        return _rule(actor, rule, image)
    return may(actor, image, Action.EDIT)


def can_answer_offer(actor: Actor, image, member: str) -> bool:
    """Accept or reject a share offered to `member`: only that project itself."""
    if project_of(actor) != member:
        return False
    return _rule(actor, "modify_member", image) if _keystone(actor) else True


def can_delete(actor: Actor, image) -> bool:
    if _keystone(actor):
        return _rule(actor, "delete_image", image)
    return _owns(actor, image) or _has(actor, "images.delete_image")


def can_deactivate(actor: Actor, image, action: str = "deactivate") -> bool:
    if _keystone(actor):
        return _rule(actor, action, image)
    return _owns(actor, image) or _has(actor, "images.deactivate_image")


def can_download(actor: Actor, image) -> bool:
    if _keystone(actor) and not _rule(actor, "download_image", image):
        return False
    return image.status != Status.DEACTIVATED or can_read_deactivated_data(actor)


def can_read_deactivated_data(actor: Actor) -> bool:
    """Glance lets only admins download a deactivated image's data."""
    if _keystone(actor):
        return _rule(actor, "context_is_admin")
    return _has(actor, "images.deactivate_image")


def can_restore(actor: Actor) -> bool:
    """Find, see and restore images in the recycle bin."""
    if _keystone(actor):
        return _rule(actor, "restore_image") and _rule(actor, "get_pending_delete_images")
    return _has(actor, "images.restore_image")


def can_read_deleted_history(actor: Actor) -> bool:
    """What happened to deleted and purged images, whoever owned them (our
    `get_deleted_image_history`): the purged records outlive their owners' rights,
    so they are the operators', not the projects'."""
    if _keystone(actor):
        return _rule(actor, "get_deleted_image_history")
    return _has(actor, "images.view_purgedimage")


def can_edit_retention_rules(actor: Actor, verb: str) -> bool:
    """Add, change or delete (`verb`) recycle-bin retention rules; a locked rule's
    weakening also needs can_unlock_retention_rule."""
    return not _keystone(actor) and _has(actor, f"images.{verb}_retentionrule")


def can_unlock_retention_rule(actor: Actor) -> bool:
    """Shorten, narrow, unlock or delete a locked recycle-bin retention rule."""
    return not _keystone(actor) and _has(actor, "images.unlock_retention_rule")


def can_scrub(actor: Actor) -> bool:
    if _keystone(actor):
        return _rule(actor, "scrub_image")
    return _has(actor, "images.scrub_image")


def can_deprecate(actor: Actor, image) -> bool:
    """Set or clear a deprecation schedule (`deprecate_image`); for a Django user:
    who manages the image. No Action of its own: it changes no status."""
    if _keystone(actor):
        return _rule(actor, "deprecate_image", image)
    return can_manage(actor, image)


def can_use_obsolete(actor: Actor) -> bool:
    """Download an image its schedule made obsolete: admins only, as GCE lets
    nobody but the project create from an obsolete image."""
    if _keystone(actor):
        return _rule(actor, "context_is_admin")
    return _has(actor, "images.change_image")


def can_publicize(actor: Actor) -> bool:
    """Glance's `publicize_image` rule: only admins make images public."""
    if _keystone(actor):
        return _rule(actor, "publicize_image")
    return _has(actor, "images.change_image")


def can_set_owner(actor: Actor) -> bool:
    if _keystone(actor):
        return _rule(actor, "context_is_admin")
    return _has(actor, "images.change_image")


def can_read_locations(actor: Actor, image) -> bool:
    """Glance's `get_image_location`: see where an image's bytes are. A location's
    URL may carry the store's credentials, so for a Django user: who manages it."""
    if _keystone(actor):
        return _rule(actor, "get_image_location", image)
    return can_manage(actor, image)


def can_act_on_locations(actor: Actor, image, rule: str) -> bool:
    """Glance's location rules: add or replace through PATCH (`set_image_location`),
    remove (`delete_image_location`, admins only by default), add and list through
    the locations API (`add_image_location`, `fetch_image_location`). For a Django
    user: who manages the image."""
    if _keystone(actor):
        return _rule(actor, rule, image)
    return can_manage(actor, image)


def check_visibility(actor: Actor, visibility: str, image=None) -> bool:
    if visibility == Visibility.PUBLIC:
        return can_publicize(actor)
    if visibility == Visibility.COMMUNITY and _keystone(actor):
        owner = image.owner if image is not None else actor.project_id
        return _rule(actor, "communitize_image", image, project_id=owner)
    return True


def may(actor: Actor, image, action: Action) -> bool:
    """The actor's right to `action` on `image`, whatever its status. The caller
    has already found the image visible to the actor."""
    match action:
        case Action.EDIT:
            return can_manage(actor, image)
        case Action.UPLOAD:
            return can_upload(actor, image)
        case Action.DOWNLOAD:
            return can_download(actor, image)
        case Action.DEACTIVATE | Action.REACTIVATE:
            return can_deactivate(actor, image, str(action))
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


def can_import_from_url(actor: Actor, image) -> bool:
    """A web-download import into `image` now. It needs what an upload needs (the
    right, and a queued image: a web-download starts from `queued`, unlike
    glance-direct's import of staged data), so it is no Action of its own."""
    return Action.UPLOAD in allowed_actions(actor, image) and can_proceed(image.begin_import)
