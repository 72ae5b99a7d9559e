"""Who is acting: a Django user, a Keystone identity, or a named system actor.

In Keystone mode (`KEYSTONE_AUTH_URL`), keystonemiddleware's `auth_token` validates the
caller's token before Django sees the request and replaces whatever identity headers
the client sent with the token's own (`X-Identity-Status`, `X-User-Id`,
`X-Project-Id`, `X-Roles`, ...). `KeystoneIdentity.from_environ` reads those headers;
nothing else in the registry looks at them. The identity stands where DRF expects a
user (`is_authenticated`, `pk`, `get_username`), so throttling and the browsable API
need no special case, while the policy asks oslo.policy about it instead of Django's
permissions.
"""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


@dataclass(frozen=True)
class KeystoneIdentity:
    """A caller whose Keystone token auth_token confirmed."""

    user_id: str
    user_name: str
    project_id: str | None
    project_name: str | None
    roles: frozenset[str]
    service_roles: frozenset[str] = frozenset()
    user_domain_id: str | None = None
    project_domain_id: str | None = None
    system_scope: str | None = None

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    @property
    def pk(self) -> str:
        return self.user_id

    def get_username(self) -> str:
        return self.user_name or self.user_id

    def __str__(self) -> str:
        return self.get_username()

    def has_perm(self, perm: str, obj=None) -> bool:
        # Django permissions are for Django users; Keystone callers answer to the policy.
        return False

    def credentials(self) -> dict:
        """The credentials oslo.policy checks rules against, as oslo.context's
        `to_policy_values()` gives them to Glance."""
        return {
            "user_id": self.user_id,
            "user_domain_id": self.user_domain_id,
            "project_id": self.project_id,
            "project_domain_id": self.project_domain_id,
            "roles": sorted(self.roles),
            "service_roles": sorted(self.service_roles),
            "system_scope": self.system_scope,
            "domain_id": None,
        }

    @classmethod
    def from_environ(cls, environ) -> "KeystoneIdentity | None":
        """The identity auth_token confirmed for this request, or None (no token, or
        one it refused: `X-Identity-Status: Invalid`)."""
        if environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
            return None
        user_id = environ.get("HTTP_X_USER_ID")
        if not user_id:
            return None
        return cls(
            user_id=user_id,
            user_name=environ.get("HTTP_X_USER_NAME", ""),
            project_id=environ.get("HTTP_X_PROJECT_ID") or None,
            project_name=environ.get("HTTP_X_PROJECT_NAME") or None,
            roles=_names(environ.get("HTTP_X_ROLES")),
            service_roles=_names(environ.get("HTTP_X_SERVICE_ROLES")),
            user_domain_id=environ.get("HTTP_X_USER_DOMAIN_ID") or None,
            project_domain_id=environ.get("HTTP_X_PROJECT_DOMAIN_ID") or None,
            system_scope=environ.get("HTTP_OPENSTACK_SYSTEM_SCOPE") or None,
        )


def _names(header: str | None) -> frozenset[str]:
    return frozenset(name.strip() for name in (header or "").split(",") if name.strip())


Actor = AbstractBaseUser | AnonymousUser | KeystoneIdentity | str
