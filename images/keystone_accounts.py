"""Staff sign in to the admin with their Keystone user name and password (Keystone
mode), and the admin names Keystone projects.

`KeystoneBackend` asks Keystone for a token with the password (scoped to the user's
default project), and keeps a Django user of the same name in step with the token's
roles: each role named in KEYSTONE_ROLE_GROUPS puts the user in that group (`admin` →
Image administrators, `image_recovery` → Recovery staff), staff while they hold any of
them, and out of every mapped group they lost. The Django user has no password of its
own: there is nothing to manage twice. A user without a mapped role is refused (and
a Django user is made for nobody who is refused). The admin session lasts as long as
the Keystone token.

`project_name(id)` is the project's name for the admin's owner columns, asked of
Keystone as the registry's service user and cached.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in
from django.core.cache import cache
from django.db import transaction
from django.dispatch import receiver
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

log = logging.getLogger(__name__)

TIMEOUT = 10  # seconds for a sign-in's call to Keystone
# A page shows up to 50 owners: each waits at most this long, and after one failure
# the others are not asked at all for UNREACHABLE_SECONDS.
LOOKUP_TIMEOUT = 3
PROJECT_NAME_SECONDS = 600  # a project's name rarely changes; its id never does
UNREACHABLE_SECONDS = 60
UNREACHABLE_KEY = "keystone-project-names-unreachable"


def _options() -> dict[str, str]:
    return settings.KEYSTONE_AUTHTOKEN


@dataclass(frozen=True)
class KeystoneSignIn:
    roles: frozenset[str]  # on the user's default project; none without one
    expires: datetime  # the token's end, which is also the admin session's


def keystone_sign_in(username: str, password: str) -> KeystoneSignIn | None:
    """A password login to Keystone, scoped to the user's default project; None when
    Keystone refuses the password (or is unreachable: the admin then says the sign-in
    failed)."""
    options = _options()
    auth = v3.Password(
        auth_url=options["auth_url"],
        username=username,
        password=password,
        user_domain_name=options.get("user_domain_name", "Default"),
    )
    try:
        access = auth.get_access(ks_session.Session(auth=auth, timeout=TIMEOUT))
    except ks_exceptions.Unauthorized:
        return None
    except ks_exceptions.ClientException as exc:
        log.warning("Keystone sign-in for %s failed: %s", username, exc)
        return None
    # An unscoped token (no default project) carries no roles to sign in with.
    roles = frozenset(access.role_names) if access.project_id else frozenset()
    return KeystoneSignIn(roles=roles, expires=access.expires)


class KeystoneBackend(ModelBackend):
    """Django authentication against Keystone; users and groups follow its roles, and
    permissions come from the groups, as Django's own backend gives them."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not username or not password:
            return None
        if username == _options().get("username"):
            # The registry's own service user holds admin on its project to validate
            # tokens; that is no reason to administer images in a browser.
            return None
        signed_in = keystone_sign_in(username, password)
        if signed_in is None:
            return None
        mapping = settings.KEYSTONE_ROLE_GROUPS
        wanted = {group for role, group in mapping.items() if role in signed_in.roles}
        User = get_user_model()
        with transaction.atomic():
            if wanted:
                user, created = User.objects.get_or_create(username=username)
                if created:
                    user.set_unusable_password()
            else:
                # No Django user for someone who was never staff; one whose roles
                # are gone keeps their record (the history names them) and nothing else.
                user = User.objects.filter(username=username).first()
                if user is None:
                    return None
            # Keystone alone says what a user may do: a superuser flag or a permission
            # given by hand (an earlier local account of the same name) would outlive
            # the role it went with.
            user.is_staff = bool(wanted)
            user.is_superuser = False
            user.save()
            user.user_permissions.clear()
            mapped = Group.objects.filter(name__in=set(mapping.values()))
            user.groups.remove(*mapped.exclude(name__in=wanted))
            user.groups.add(*mapped.filter(name__in=wanted))
        if not wanted or not self.user_can_authenticate(user):
            return None
        user.keystone_expires = signed_in.expires  # for end_session_with_token
        return user


@receiver(user_logged_in)
def end_session_with_token(sender, request, user, **kwargs):
    """The admin session ends when the Keystone token it was signed in with does (as
    Horizon's): a role taken away in Keystone then counts from the next sign-in, at
    the latest a token's lifetime later, not after Django's two-week session. Set
    here, after login() has cycled or flushed the session."""
    expires = getattr(user, "keystone_expires", None)
    if expires is not None:
        request.session.set_expiry(expires)


def _service_auth() -> v3.Password:
    """The registry's service user, one plugin per set of options: keystoneauth keeps
    its token (under a lock) until it nears expiry, so a page of owners costs one
    GET each, not a new token each."""
    options = _options()
    key = tuple(
        options.get(name, "")
        for name in ("auth_url", "username", "password", "project_name", "user_domain_name")
    )
    auth = _service_auths.get(key)
    if auth is None:
        auth = v3.Password(
            auth_url=options["auth_url"],
            username=options["username"],
            password=options["password"],
            project_name=options["project_name"],
            user_domain_name=options.get("user_domain_name", "Default"),
            project_domain_name=options.get("project_domain_name", "Default"),
        )
        _service_auths[key] = auth
    return auth


_service_auths: dict[tuple[str, ...], v3.Password] = {}


def project_name(project_id: str | None) -> str | None:
    """The name of a Keystone project, or None when it is unknown (or Keystone is
    not answering: the admin shows the id alone)."""
    if not project_id or not settings.KEYSTONE_AUTHTOKEN:
        return None
    if cache.get(UNREACHABLE_KEY):
        return None
    key = f"keystone-project-name:{project_id}"
    name = cache.get(key)
    if name is not None:
        return name or None
    try:
        response = ks_session.Session(auth=_service_auth(), timeout=LOOKUP_TIMEOUT).get(
            f"/projects/{quote(project_id, safe='')}",
            # Keystone where auth_token reaches it (its `interface`, internal by default).
            endpoint_filter={
                "service_type": "identity",
                "interface": _options().get("interface", "internal"),
            },
            raise_exc=False,
        )
    except ks_exceptions.ClientException as exc:
        # Down, or refusing the service user: every other owner on the page would
        # wait as long, so none is asked for a while.
        log.warning("Keystone project lookup for %s failed: %s", project_id, exc)
        cache.set(UNREACHABLE_KEY, True, UNREACHABLE_SECONDS)
        return None
    if response.status_code == 200:
        name = response.json()["project"]["name"]
    elif response.status_code == 404:
        name = ""  # an owner that is not (or no longer) a project
    else:
        log.warning(
            "Keystone answered %s to the project lookup for %s: %s",
            response.status_code,
            project_id,
            response.text[:200],
        )
        cache.set(UNREACHABLE_KEY, True, UNREACHABLE_SECONDS)
        return None
    cache.set(key, name, PROJECT_NAME_SECONDS)
    return name or None
