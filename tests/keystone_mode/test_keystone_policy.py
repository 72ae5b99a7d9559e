"""Glance's policy rules in Keystone mode, over HTTP against the real server: who may
do what to an image (the role table), an operator's policy.yaml changing the
answers, identity headers a client forges, and tokens that stop being good.

Every expected answer is what Glance's secure-RBAC defaults say (glance/policies/),
with Glance's way of hiding what a caller may not see: a rule refused on an image
the caller may `get_image` is a 403, on one they may not it is a 404
(glance/api/v2/policy.py, ImageAPIPolicy._enforce). Restore is ours: only the
recycle bin's keepers (admin, image_recovery) find a pending_delete image at all.
"""

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import pytest
import requests

from tests.keystone_mode.conftest import TOKEN_CACHE_SECONDS

DATA = b"the bytes of a keystone-mode image\n" * 8
TIMEOUT = 30

# The personas of the role table, all in project alpha.
READER, MEMBER, ADMIN, SERVICE, NO_ROLE, RECOVERY = (
    "ursula",
    "alice",
    "adam",
    "sam",
    "charlie",
    "rita",
)


@pytest.fixture(scope="module")
def api(registry, cloud):
    return Api(registry.url, cloud)


class Api:
    """HTTP as the cast: `call(name, ...)` with the user's token, `image(...)` to set up
    an image in the state a row needs (as adam, who may do anything), `state(id)` to
    read it back as adam."""

    def __init__(self, url: str, cloud):
        self.url = url
        self.cloud = cloud
        self.token = cache(lambda name: cloud.token(name).id)

    def project(self, name: str) -> str:
        return self.cloud.projects[name]

    def call(self, name: str | None, method: str, path: str, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if name is not None:
            headers["X-Auth-Token"] = self.token(name)
        headers.setdefault("Accept", "application/json")
        return requests.request(
            method, f"{self.url}{path}", headers=headers, timeout=TIMEOUT, **kwargs
        )

    def image(
        self,
        owner: str = "alpha",
        *,
        status: str = "active",
        visibility: str = "private",
        members: tuple[str, ...] = (),
        accepted_by: str | None = None,
    ) -> str:
        """A new image of project `owner`: queued (no data), active, deactivated or
        pending_delete; shared with the projects `members` (pending, unless
        `accepted_by` names the member user who accepts)."""
        body = {
            "name": f"policy-{uuid.uuid4().hex[:8]}",
            "owner": self.project(owner),
            "visibility": visibility,
            "disk_format": "raw",
            "container_format": "bare",
        }
        created = self.call(ADMIN, "POST", "/v2/images", json=body)
        assert created.status_code == 201, created.text
        image_id = created.json()["id"]
        if status != "queued":
            self.upload(ADMIN, image_id, expect=204)
        if status == "deactivated":
            self.expect(ADMIN, "POST", f"/v2/images/{image_id}/actions/deactivate", 204)
        if status == "pending_delete":
            self.expect(ADMIN, "DELETE", f"/v2/images/{image_id}", 204)
        for member in members:
            self.expect(
                ADMIN,
                "POST",
                f"/v2/images/{image_id}/members",
                200,
                json={"member": self.project(member)},
            )
            if accepted_by is not None:
                self.expect(
                    accepted_by,
                    "PUT",
                    f"/v2/images/{image_id}/members/{self.project(member)}",
                    200,
                    json={"status": "accepted"},
                )
        assert self.state(image_id)["status"] == status
        return image_id

    def upload(self, name: str, image_id: str, *, expect: int | None = None):
        response = self.call(
            name,
            "PUT",
            f"/v2/images/{image_id}/file",
            data=DATA,
            headers={"Content-Type": "application/octet-stream"},
        )
        if expect is not None:
            assert response.status_code == expect, response.text
        return response

    def expect(self, name: str, method: str, path: str, status: int, **kwargs):
        response = self.call(name, method, path, **kwargs)
        assert response.status_code == status, response.text
        return response

    def state(self, image_id: str) -> dict:
        """The image as adam sees it (pending_delete ones too) with its members."""
        image = self.expect(ADMIN, "GET", f"/v2/images/{image_id}", 200).json()
        if image["status"] == "pending_delete":
            return image  # a deleted image's members are not shown, as in Glance
        if image["visibility"] != "shared":  # Glance: "Only shared images have members."
            self.expect(ADMIN, "GET", f"/v2/images/{image_id}/members", 403)
            image["members"] = []
            return image
        members = self.expect(ADMIN, "GET", f"/v2/images/{image_id}/members", 200).json()
        image["members"] = sorted(
            (member["member_id"], member["status"]) for member in members["members"]
        )
        return image


def _publicize(api: Api, who: str, image_id: str) -> requests.Response:
    return api.call(
        who,
        "PATCH",
        f"/v2/images/{image_id}",
        json=[{"op": "replace", "path": "/visibility", "value": "public"}],
        headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
    )


# --- the role table -------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One API operation: the image it needs, the call, and what shows it was done."""

    setup: dict
    call: Callable[[Api, str, str], requests.Response]
    done: Callable[[Api, str, dict, requests.Response], bool]


def _renamed(api, image_id, before, response):
    return api.state(image_id)["name"] == "renamed"


OPERATIONS = {
    "list": Operation(
        {},
        lambda api, who, image: api.call(who, "GET", "/v2/images?limit=1000"),
        lambda api, image, before, r: image in [i["id"] for i in r.json()["images"]],
    ),
    "show": Operation(
        {},
        lambda api, who, image: api.call(who, "GET", f"/v2/images/{image}"),
        lambda api, image, before, r: r.json()["id"] == image,
    ),
    "update": Operation(
        {},
        lambda api, who, image: api.call(
            who,
            "PATCH",
            f"/v2/images/{image}",
            json=[{"op": "replace", "path": "/name", "value": "renamed"}],
            headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
        ),
        _renamed,
    ),
    "upload": Operation(
        {"status": "queued"},
        lambda api, who, image: api.upload(who, image),
        lambda api, image, before, r: (
            (api.state(image)["status"], api.state(image)["size"]) == ("active", len(DATA))
        ),
    ),
    "download": Operation(
        {},
        lambda api, who, image: api.call(who, "GET", f"/v2/images/{image}/file"),
        lambda api, image, before, r: r.content == DATA,
    ),
    "deactivate": Operation(
        {},
        lambda api, who, image: api.call(who, "POST", f"/v2/images/{image}/actions/deactivate"),
        lambda api, image, before, r: api.state(image)["status"] == "deactivated",
    ),
    "reactivate": Operation(
        {"status": "deactivated"},
        lambda api, who, image: api.call(who, "POST", f"/v2/images/{image}/actions/reactivate"),
        lambda api, image, before, r: api.state(image)["status"] == "active",
    ),
    "delete": Operation(
        {},
        lambda api, who, image: api.call(who, "DELETE", f"/v2/images/{image}"),
        lambda api, image, before, r: api.state(image)["status"] == "pending_delete",
    ),
    "add member": Operation(
        {"visibility": "shared"},
        lambda api, who, image: api.call(
            who, "POST", f"/v2/images/{image}/members", json={"member": api.project("service")}
        ),
        lambda api, image, before, r: (
            api.state(image)["members"] == [(api.project("service"), "pending")]
        ),
    ),
    # Accepting is the member's business: an image of beta's offered to alpha.
    "member accept": Operation(
        {"owner": "beta", "visibility": "shared", "members": ("alpha",)},
        lambda api, who, image: api.call(
            who,
            "PUT",
            f"/v2/images/{image}/members/{api.project('alpha')}",
            json={"status": "accepted"},
        ),
        lambda api, image, before, r: (
            api.state(image)["members"] == [(api.project("alpha"), "accepted")]
        ),
    ),
    "publicize": Operation(
        {},
        _publicize,
        lambda api, image, before, r: api.state(image)["visibility"] == "public",
    ),
    "restore": Operation(
        {"status": "pending_delete"},
        lambda api, who, image: api.call(who, "POST", f"/v2/images/{image}/actions/restore"),
        lambda api, image, before, r: api.state(image)["status"] == "active",
    ),
}

COLUMNS = list(OPERATIONS)
# What Glance's defaults answer each persona on an image of their own project.
# reader: `role:reader` reads (get_image, get_images) but downloads nothing
# (download_image wants `member`); member: everything in the project but publicize
# (admin only); admin: everything; service and no role: get_images wants a reader
# (403), and get_image too, so every image is invisible to them (404). Restore: the
# recycle bin is the admin's and image_recovery's; to others its images do not exist.
ROLE_TABLE = {
    #          list show update upload down deact react delete addm accept public restore
    READER: (200, 200, 403, 403, 403, 403, 403, 403, 403, 403, 403, 404),
    MEMBER: (200, 200, 200, 204, 200, 204, 204, 204, 200, 200, 403, 404),
    ADMIN: (200, 200, 200, 204, 200, 204, 204, 204, 200, 200, 200, 204),
    SERVICE: (403, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404),
    NO_ROLE: (403, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404, 404),
    RECOVERY: (200, 200, 200, 204, 200, 204, 204, 204, 200, 200, 403, 204),
}
OWN_PROJECT = [
    pytest.param(who, operation, expected, id=f"{who}-{operation}-{expected}")
    for who, answers in ROLE_TABLE.items()
    for operation, expected in zip(COLUMNS, answers, strict=True)
]

# Another project's images: beta's, to alpha's personas. A private one is invisible
# (404) but to the admin; a public one is readable, so a refused change is a 403.
OTHER_PROJECT = [
    pytest.param(who, operation, setup, expected, id=f"{who}-{operation}-{label}-{expected}")
    for who, operation, label, setup, expected in [
        (MEMBER, "show", "private", {}, 404),
        (MEMBER, "update", "private", {}, 404),
        (MEMBER, "delete", "private", {}, 404),
        (MEMBER, "deactivate", "private", {}, 404),
        (MEMBER, "show", "public", {"visibility": "public"}, 200),
        (MEMBER, "download", "public", {"visibility": "public"}, 200),
        (MEMBER, "update", "public", {"visibility": "public"}, 403),
        (MEMBER, "delete", "public", {"visibility": "public"}, 403),
        (MEMBER, "deactivate", "public", {"visibility": "public"}, 403),
        (MEMBER, "download", "shared-accepted", {"visibility": "shared", "share": True}, 200),
        (MEMBER, "add member", "shared-accepted", {"visibility": "shared", "share": True}, 403),
        (MEMBER, "restore", "private", {}, 404),
        (READER, "show", "public", {"visibility": "public"}, 200),
        (READER, "download", "public", {"visibility": "public"}, 403),
        (SERVICE, "show", "public", {"visibility": "public"}, 404),
        (NO_ROLE, "download", "public", {"visibility": "public"}, 404),
        (ADMIN, "show", "private", {}, 200),
        (ADMIN, "update", "private", {}, 200),
        (ADMIN, "delete", "private", {}, 204),
        (ADMIN, "deactivate", "private", {}, 204),
        (ADMIN, "restore", "private", {}, 204),
        # The recycle bin is cloud-wide: its keepers restore any project's images.
        (RECOVERY, "restore", "private", {}, 204),
        (RECOVERY, "restore", "public", {"visibility": "public"}, 204),
    ]
]


def _check(api: Api, who: str, operation: str, image_id: str, expected: int) -> None:
    op = OPERATIONS[operation]
    before = api.state(image_id)

    response = op.call(api, who, image_id)

    assert response.status_code == expected, response.text
    if expected < 400:
        assert op.done(api, image_id, before, response)
    else:
        # A refusal changes nothing (not even updated_at) and says why, Glance-style.
        assert api.state(image_id) == before
        assert response.json()["code"].startswith(str(expected))


@pytest.mark.parametrize(("who", "operation", "expected"), OWN_PROJECT)
def test_keystone_policy_role_table_on_own_project_image(api, who, operation, expected):
    setup = dict(OPERATIONS[operation].setup)
    image_id = api.image(**setup)

    _check(api, who, operation, image_id, expected)


@pytest.mark.parametrize(("who", "operation", "setup", "expected"), OTHER_PROJECT)
def test_keystone_policy_role_table_on_other_project_image(api, who, operation, setup, expected):
    setup = {**OPERATIONS[operation].setup, **setup, "owner": "beta"}
    if setup.pop("share", False):
        setup.update(members=("alpha",), accepted_by=MEMBER)
    image_id = api.image(**setup)

    _check(api, who, operation, image_id, expected)


@pytest.mark.parametrize(
    ("who", "expected"),
    [(READER, 403), (MEMBER, 201), (ADMIN, 201), (SERVICE, 403), (NO_ROLE, 403), (RECOVERY, 201)],
)
def test_keystone_policy_create_follows_add_image(api, who, expected):
    name = f"created-{uuid.uuid4().hex[:8]}"

    response = api.call(who, "POST", "/v2/images", json={"name": name})

    assert response.status_code == expected, response.text
    found = api.expect(ADMIN, "GET", f"/v2/images?name={name}", 200).json()["images"]
    if expected == 201:
        assert [(i["id"], i["owner"], i["status"]) for i in found] == [
            (response.json()["id"], api.project("alpha"), "queued")
        ]
    else:
        assert found == []
        assert response.json()["code"] == "403 Forbidden"


@pytest.mark.parametrize("who", [MEMBER, READER])
def test_keystone_policy_create_for_another_project_is_refused(api, who):
    name = f"created-{uuid.uuid4().hex[:8]}"

    response = api.call(
        who, "POST", "/v2/images", json={"name": name, "owner": api.project("beta")}
    )

    assert response.status_code == 403, response.text
    assert api.expect(ADMIN, "GET", f"/v2/images?name={name}", 200).json()["images"] == []


def test_keystone_policy_list_shows_only_what_the_caller_may_see(api):
    own = api.image("alpha")
    others = api.image("beta")
    public = api.image("beta", visibility="public")

    listed = {
        i["id"] for i in api.expect(MEMBER, "GET", "/v2/images?limit=1000", 200).json()["images"]
    }
    everything = {
        i["id"] for i in api.expect(ADMIN, "GET", "/v2/images?limit=1000", 200).json()["images"]
    }

    assert (own in listed, others in listed, public in listed) == (True, False, True)
    assert {own, others, public} <= everything


@pytest.mark.parametrize(("who", "sees"), [(RECOVERY, True), (ADMIN, True), (MEMBER, False)])
def test_keystone_policy_recycle_bin_lists_every_project_to_its_keepers(api, who, sees):
    betas = api.image("beta", status="pending_delete")

    response = api.expect(who, "GET", "/v2/images?status=pending_delete&limit=1000", 200)

    assert (betas in {i["id"] for i in response.json()["images"]}) is sees


# --- an operator's policy.yaml ----------------------------------------------------------


def _write_policy(path, text: str) -> None:
    """Write the file and move its mtime on by a second at least: oslo.policy reloads
    on a changed mtime, and two writes within one clock tick could share one."""
    prior = path.stat().st_mtime_ns
    path.write_text(text)
    mtime = max(time.time_ns(), prior + 1_000_000_000)
    os.utime(path, ns=(mtime, mtime))


def _many(api: Api, name: str, method: str, path: str, times: int = 12) -> list[int]:
    # New connections each time, so both gunicorn workers answer some of them.
    return [api.call(name, method, path).status_code for _ in range(times)]


def test_keystone_policy_file_override_applies_without_restart(api, policy_file):
    alices = api.image("alpha")
    adams = api.image("alpha")
    try:
        _write_policy(policy_file, '"delete_image": "role:admin"\n')

        # Refused on every attempt, whichever worker answers: each re-read the file.
        assert _many(api, MEMBER, "DELETE", f"/v2/images/{alices}") == [403] * 12
        assert api.state(alices)["status"] == "active"
        api.expect(ADMIN, "DELETE", f"/v2/images/{adams}", 204)
        assert api.state(adams)["status"] == "pending_delete"
    finally:
        _write_policy(policy_file, "{}\n")

    # Glance's default is back: the owner's member deletes her image again.
    api.expect(MEMBER, "DELETE", f"/v2/images/{alices}", 204)
    assert api.state(alices)["status"] == "pending_delete"


def test_keystone_policy_file_override_can_grant_what_defaults_refuse(api, policy_file):
    granted, later = api.image("alpha"), api.image("alpha")
    try:
        _write_policy(policy_file, '"publicize_image": "role:member"\n')

        response = _publicize(api, MEMBER, granted)

        assert response.status_code == 200, response.text
        assert api.state(granted)["visibility"] == "public"
    finally:
        _write_policy(policy_file, "{}\n")

    # Back to admin only, in every worker.
    assert [_publicize(api, MEMBER, later).status_code for _ in range(12)] == [403] * 12
    assert api.state(later)["visibility"] == "private"


# --- forged identity headers ------------------------------------------------------------


def _forged(api: Api) -> dict[str, str]:
    """What a client might send hoping to be someone else: adam's ids, beta's project,
    the admin role, a confirmed identity."""
    adam = api.cloud.users["adam"]
    return {
        "X-Identity-Status": "Confirmed",
        "X-Service-Identity-Status": "Confirmed",
        "X-User-Id": adam.id,
        "X-User-Name": "adam",
        "X-Project-Id": api.project("beta"),
        "X-Project-Name": "beta",
        "X-Tenant-Id": api.project("beta"),
        "X-Roles": "admin,member,reader,image_recovery",
        "X-Service-Roles": "admin,service",
        "X-Is-Admin-Project": "True",
        "X-User-Domain-Id": "default",
        "X-Project-Domain-Id": "default",
        "OpenStack-System-Scope": "all",
    }


def test_keystone_forged_headers_with_a_token_change_nothing(api):
    betas = api.image("beta")
    alices = api.image("alpha")
    forged = _forged(api)

    shown = api.call(MEMBER, "GET", f"/v2/images/{betas}", headers=forged)
    deleted = api.call(MEMBER, "DELETE", f"/v2/images/{betas}", headers=forged)
    publicized = api.call(
        MEMBER,
        "PATCH",
        f"/v2/images/{alices}",
        json=[{"op": "replace", "path": "/visibility", "value": "public"}],
        headers={**forged, "Content-Type": "application/openstack-images-v2.1-json-patch"},
    )
    listed = api.call(MEMBER, "GET", "/v2/images?limit=1000", headers=forged)
    created = api.call(MEMBER, "POST", "/v2/images", json={"name": "forged"}, headers=forged)

    assert (shown.status_code, deleted.status_code, publicized.status_code) == (404, 404, 403)
    assert api.state(betas)["status"] == "active"
    assert api.state(alices)["visibility"] == "private"
    ids = {i["id"] for i in listed.json()["images"]}
    assert (alices in ids, betas in ids) == (True, False)
    assert created.status_code == 201
    assert created.json()["owner"] == api.project("alpha")


def _assert_keystone_challenge(api: Api, response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == f'Keystone uri="{api.cloud.keystone.url}"'
    body = response.json()
    assert (body["code"], body["title"]) == ("401 Unauthorized", "Unauthorized")
    assert body["message"]


def test_keystone_forged_headers_without_a_token_are_unauthenticated(api):
    betas = api.image("beta")

    for method, path in [("GET", "/v2/images"), ("DELETE", f"/v2/images/{betas}")]:
        _assert_keystone_challenge(api, api.call(None, method, path, headers=_forged(api)))
    assert api.state(betas)["status"] == "active"


def test_keystone_missing_token_is_unauthenticated(api):
    _assert_keystone_challenge(api, api.call(None, "GET", "/v2/images"))


@pytest.mark.parametrize("token", ["garbage", "gAAAAABnot-a-fernet-token", "x" * 300])
def test_keystone_invalid_token_is_unauthenticated(api, token):
    response = api.call(None, "GET", "/v2/images", headers={"X-Auth-Token": token})

    _assert_keystone_challenge(api, response)


def test_keystone_forbidden_answer_has_glance_error_body(api):
    image_id = api.image("alpha")

    response = api.call(READER, "DELETE", f"/v2/images/{image_id}")

    assert response.status_code == 403
    body = response.json()
    assert (body["code"], body["title"]) == ("403 Forbidden", "Forbidden")
    assert image_id in body["message"]


# --- tokens that stop being good ----------------------------------------------------------


def _poll_until_refused(api: Api, token: str, seconds: float) -> requests.Response:
    """GET /v2/images with `token` until it is refused or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        response = api.call(None, "GET", "/v2/images", headers={"X-Auth-Token": token})
        if response.status_code != 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.25)


def test_keystone_revoked_token_is_refused_once_the_cache_lets_go(api):
    token = api.cloud.token(MEMBER).id
    assert api.call(None, "GET", "/v2/images", headers={"X-Auth-Token": token}).status_code == 200

    api.cloud.keystone.revoke(token)

    # auth_token may answer from its cache for TOKEN_CACHE_SECONDS, in each worker.
    response = _poll_until_refused(api, token, 3 * TOKEN_CACHE_SECONDS + 5)
    _assert_keystone_challenge(api, response)


def test_keystone_expired_token_is_refused(api):
    """A token that expires in a few seconds, from the session's Keystone: one issued
    for an application credential expires no later than the credential does."""
    alice = api.cloud.users["alice"]
    keystone = api.cloud.keystone
    expires = time.time() + 4
    credential = requests.post(
        f"{keystone.url}/users/{alice.id}/application_credentials",
        json={
            "application_credential": {
                "name": f"short-{uuid.uuid4().hex[:8]}",
                "expires_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(expires)),
            }
        },
        headers={"X-Auth-Token": api.token(MEMBER)},
        timeout=TIMEOUT,
    )
    assert credential.status_code == 201, credential.text
    secret = credential.json()["application_credential"]
    issued = requests.post(
        f"{keystone.url}/auth/tokens",
        json={
            "auth": {
                "identity": {
                    "methods": ["application_credential"],
                    "application_credential": {"id": secret["id"], "secret": secret["secret"]},
                }
            }
        },
        timeout=TIMEOUT,
    )
    assert issued.status_code == 201, issued.text
    token = issued.headers["X-Subject-Token"]
    assert api.call(None, "GET", "/v2/images", headers={"X-Auth-Token": token}).status_code == 200

    response = _poll_until_refused(api, token, expires - time.time() + 3 * TOKEN_CACHE_SECONDS)

    _assert_keystone_challenge(api, response)
    assert time.time() >= expires - 1  # refused for its expiry, not before it
