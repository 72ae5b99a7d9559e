"""Glance's policy rules, enforced by oslo.policy, for callers with a Keystone token.

The rule names and their defaults are Glance's own (glance/policies/base.py and
image.py, the "secure RBAC" defaults current Glance enforces: `admin`, project-scoped
`member` and `reader`, and the `service` role), so an operator's existing Glance
`policy.yaml` carries over unchanged. Five rules are ours, for what Glance cannot do:
`get_pending_delete_images`, `restore_image`, `scrub_image`,
`get_deleted_image_history` (the history of deleted and purged images) and
`deprecate_image` (setting a deprecation schedule: who may modify the image, by default).

An override file is named by `IMAGES_POLICY_FILE`; oslo.policy reads it again when it
changes, so an edited rule applies to the next request without a restart. The policy
module (`images.policy`) is the only caller: it turns an actor and an image into
oslo.policy's credentials and target.
"""

import functools
from collections.abc import Mapping

from django.conf import settings
from oslo_config import cfg
from oslo_policy import policy as oslo_policy

# glance/policies/base.py
PROJECT_MEMBER = "role:member and project_id:%(project_id)s"
PROJECT_READER = "role:reader and project_id:%(project_id)s"
IMAGE_MEMBER_CHECK = "project_id:%(member_id)s"
VISIBLE_TO_ALL = (
    f"project_id:%(project_id)s or {IMAGE_MEMBER_CHECK} or 'community':%(visibility)s"
    " or 'public':%(visibility)s or 'shared':%(visibility)s"
)
ADMIN = "rule:context_is_admin"
ADMIN_OR_PROJECT_MEMBER = f"{ADMIN} or ({PROJECT_MEMBER})"
ADMIN_OR_PROJECT_READER = f"{ADMIN} or ({PROJECT_READER})"
ADMIN_OR_PROJECT_READER_GET_IMAGE = f"{ADMIN} or (role:reader and ({VISIBLE_TO_ALL}))"
ADMIN_OR_PROJECT_MEMBER_DOWNLOAD_IMAGE = f"{ADMIN} or (role:member and ({VISIBLE_TO_ALL}))"
ADMIN_OR_PROJECT_MEMBER_CREATE_IMAGE = f"{ADMIN} or ({PROJECT_MEMBER} and project_id:%(owner)s)"
ADMIN_OR_SHARED_MEMBER = f"{ADMIN} or (role:member and {IMAGE_MEMBER_CHECK})"
ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER = (
    f"{ADMIN} or role:reader and (project_id:%(project_id)s or {IMAGE_MEMBER_CHECK})"
)
SERVICE = "rule:service_api"
SERVICE_OR_PROJECT_MEMBER = f"{SERVICE} or ({PROJECT_MEMBER} and project_id:%(owner)s)"

# Ours: the recycle bin is cloud-wide, like the admin's, so its role is not tied to
# the image's project.
RECOVERY = f"{ADMIN} or role:image_recovery"

_IMAGE = ["project"]
RULES = [
    ("default", "", None),
    ("context_is_admin", "role:admin", None),
    ("service_api", "role:service or role:admin", None),
    ("add_image", ADMIN_OR_PROJECT_MEMBER_CREATE_IMAGE, _IMAGE),
    ("delete_image", ADMIN_OR_PROJECT_MEMBER, _IMAGE),
    ("get_image", ADMIN_OR_PROJECT_READER_GET_IMAGE, _IMAGE),
    ("get_images", ADMIN_OR_PROJECT_READER, _IMAGE),
    ("modify_image", ADMIN_OR_PROJECT_MEMBER, _IMAGE),
    ("publicize_image", ADMIN, _IMAGE),
    ("communitize_image", ADMIN_OR_PROJECT_MEMBER, _IMAGE),
    ("download_image", ADMIN_OR_PROJECT_MEMBER_DOWNLOAD_IMAGE, _IMAGE),
    ("upload_image", ADMIN_OR_PROJECT_MEMBER, _IMAGE),
    ("delete_image_location", ADMIN, _IMAGE),
    ("get_image_location", ADMIN_OR_PROJECT_READER, _IMAGE),
    ("set_image_location", ADMIN_OR_PROJECT_MEMBER, _IMAGE),
    ("add_image_location", SERVICE_OR_PROJECT_MEMBER, _IMAGE),
    ("fetch_image_location", SERVICE, _IMAGE),
    ("add_member", ADMIN_OR_PROJECT_MEMBER, _IMAGE),
    ("delete_member", ADMIN_OR_PROJECT_MEMBER, _IMAGE),
    ("get_member", ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER, _IMAGE),
    ("get_members", ADMIN_OR_PROJECT_READER_OR_SHARED_MEMBER, _IMAGE),
    ("modify_member", ADMIN_OR_SHARED_MEMBER, _IMAGE),
    ("deactivate", ADMIN_OR_PROJECT_MEMBER, _IMAGE),
    ("reactivate", ADMIN_OR_PROJECT_MEMBER, _IMAGE),
    ("get_pending_delete_images", RECOVERY, _IMAGE),
    ("restore_image", RECOVERY, _IMAGE),
    ("scrub_image", ADMIN, _IMAGE),
    ("get_deleted_image_history", ADMIN, _IMAGE),
    ("deprecate_image", ADMIN_OR_PROJECT_MEMBER, _IMAGE),
]


@functools.cache
def enforcer() -> oslo_policy.Enforcer:
    """One enforcer per process, with Glance's defaults and the operator's file."""
    conf = cfg.ConfigOpts()
    conf([], project="glance-registry", default_config_files=[], default_config_dirs=[])
    defaults = [
        oslo_policy.RuleDefault(name, check, scope_types=scope) for name, check, scope in RULES
    ]
    path = settings.IMAGES_POLICY_FILE
    if path is None:
        # The defaults alone; with use_conf oslo.policy would look for a policy.yaml in
        # ~ and /etc and apply whatever it found.
        rules = oslo_policy.Enforcer(conf, use_conf=False)
        rules.register_defaults(defaults)
        rules.set_rules(
            oslo_policy.Rules({rule.name: rule.check for rule in defaults}), use_conf=False
        )
        return rules
    rules = oslo_policy.Enforcer(conf, policy_file=str(path), use_conf=True)
    conf.set_override("policy_dirs", [], group="oslo_policy")
    rules.suppress_default_change_warnings = True
    rules.register_defaults(defaults)
    return rules


def allows(rule: str, target: Mapping, credentials: Mapping) -> bool:
    """Whether `rule` lets the caller with `credentials` act on `target`. A token of
    the wrong scope (a system-scoped one for a project rule) is refused, not raised."""
    try:
        return bool(enforcer().enforce(rule, target, dict(credentials)))
    except oslo_policy.InvalidScope:
        return False
