"""Staff sign in to the admin with their Keystone user name and password (Keystone
mode), and the admin names Keystone projects.

`KeystoneBackend` asks Keystone for a token with the password (scoped to the user's
default project), and keeps a Django user of the same name in step with the token's
roles: each role named in KEYSTONE_ROLE_GROUPS puts the user in that group (`admin` →
Image administrators, `image_recovery` → Recovery staff), staff while they hold any of
them, and out of every mapped group they lost. The Django user has no password of its
own: there is nothing to manage twice. A user without a mapped role is refused.

`project_name(id)` is the project's name for the admin's owner columns, asked of
Keystone as the registry's service user and cached.
"""

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import transaction
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

log = logging.getLogger(__name__)

TIMEOUT = 10  # seconds for one call to Keystone
PROJECT_NAME_SECONDS = 600


def _options() -> dict[str, str]:
    return settings.KEYSTONE_AUTHTOKEN


def _session(auth) -> ks_session.Session:
    return ks_session.Session(auth=auth, timeout=TIMEOUT)


def keystone_roles(username: str, password: str) -> frozenset[str] | None:
    """The user's roles on their default project, or None when Keystone refuses the
    password (or is unreachable: the admin then says the sign-in failed)."""
    options = _options()
    auth = v3.Password(
        auth_url=options["auth_url"],
        username=username,
        password=password,
        user_domain_name=options.get("user_domain_name", "Default"),
    )
    session = _session(auth)
    try:
        access = auth.get_access(session)
        if access.project_id is None:
            # An unscoped token: no default project, hence no roles to sign in with.
            return frozenset()
        return frozenset(access.role_names)
    except ks_exceptions.Unauthorized:
        return None
    except ks_exceptions.ClientException as exc:
        log.warning("Keystone sign-in for %s failed: %s", username, exc)
        return None


class KeystoneBackend(ModelBackend):
    """Django authentication against Keystone; users and groups follow its roles, and
    permissions come from the groups, as Django's own backend gives them."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not username or not password:
            return None
        roles = keystone_roles(username, password)
        if roles is None:
            return None
        mapping = settings.KEYSTONE_ROLE_GROUPS
        wanted = {group for role, group in mapping.items() if role in roles}
        with transaction.atomic():
            user, created = get_user_model().objects.get_or_create(username=username)
            if created:
                user.set_unusable_password()
            user.is_staff = bool(wanted)
            user.save()
            mapped = Group.objects.filter(name__in=set(mapping.values()))
            user.groups.remove(*mapped.exclude(name__in=wanted))
            user.groups.add(*Group.objects.filter(name__in=wanted))
        return user if wanted and user.is_active else None


def project_name(project_id: str | None) -> str | None:
    """The name of a Keystone project, or None when it is unknown (or Keystone is
    not answering: the admin shows the id alone)."""
    if not project_id or not settings.KEYSTONE_AUTHTOKEN:
        return None
    key = f"keystone-project-name:{project_id}"
    name = cache.get(key)
    if name is not None:
        return name or None
    options = _options()
    auth = v3.Password(
        auth_url=options["auth_url"],
        username=options["username"],
        password=options["password"],
        project_name=options["project_name"],
        user_domain_name=options.get("user_domain_name", "Default"),
        project_domain_name=options.get("project_domain_name", "Default"),
    )
    try:
        response = _session(auth).get(
            f"/projects/{project_id}",
            endpoint_filter={"service_type": "identity", "interface": "public"},
            raise_exc=False,
        )
    except ks_exceptions.ClientException as exc:
        log.warning("Keystone project lookup for %s failed: %s", project_id, exc)
        return None
    name = response.json()["project"]["name"] if response.status_code == 200 else ""
    cache.set(key, name, PROJECT_NAME_SECONDS)
    return name or None
