"""The harness itself (tests/keystone.py): a real Keystone logs the cast in, lists the
registry in its catalog, lets the registry's service user validate tokens, and forgets
revoked and expired ones."""

import time

import openstack.config
import openstack.connection
import pytest
import requests
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from tests.keystone import running_keystone, write_clouds_yaml


def test_keystone_password_login_lists_image_endpoint_at_registry(cloud):
    alice = cloud.users["alice"]
    auth = v3.Password(
        auth_url=cloud.keystone.url,
        username="alice",
        password=alice.password,
        user_domain_id="default",
        project_name="alpha",
        project_domain_id="default",
    )
    session = ks_session.Session(auth=auth)

    assert session.get_token()
    assert session.get_project_id() == cloud.projects["alpha"]
    for interface in ("public", "internal", "admin"):
        assert session.get_endpoint(service_type="image", interface=interface) == (
            cloud.registry_url
        )


@pytest.mark.parametrize(
    ("username", "project", "roles"),
    [
        ("alice", "alpha", ["member", "reader"]),
        ("bob", "beta", ["member", "reader"]),
        ("rita", "alpha", ["image_recovery", "member", "reader"]),
        ("ursula", "alpha", ["reader"]),
        # Keystone's bootstrap makes admin imply manager, and manager member.
        ("adam", "alpha", ["admin", "manager", "member", "reader"]),
        ("glance", "service", ["admin", "manager", "member", "reader", "service"]),
        # No implied roles: `service` and `creator` imply nothing.
        ("sam", "alpha", ["service"]),
        ("charlie", "alpha", ["creator"]),
    ],
)
def test_keystone_cast_has_roles_on_their_project(cloud, username, project, roles):
    token = cloud.token(username)

    assert token.project_id == cloud.projects[project]
    assert token.roles == roles


def test_keystone_member_cannot_scope_to_another_project(cloud):
    bob = cloud.users["bob"]

    with pytest.raises(requests.HTTPError) as refused:
        cloud.keystone.token("bob", bob.password, "alpha")
    assert refused.value.response.status_code == 401


def test_keystone_service_user_validates_a_token(cloud, capsys):
    alice, glance = cloud.token("alice"), cloud.token("glance")

    took = []
    for _ in range(10):
        started = time.perf_counter()
        validated = cloud.keystone.validate(alice.id, auth=glance.id)
        took.append(time.perf_counter() - started)
        assert validated.status_code == 200
    with capsys.disabled():
        print(
            f"\nKeystone validates a token in {took[0] * 1000:.0f} ms the first time, "
            f"{sorted(took)[len(took) // 2] * 1000:.0f} ms (median) from its cache"
        )

    body = validated.json()["token"]
    assert (body["user"]["name"], body["project"]["name"]) == ("alice", "alpha")
    assert validated.headers["X-Subject-Token"] == alice.id


def test_keystone_revoked_token_no_longer_validates(cloud):
    alice, glance = cloud.token("alice"), cloud.token("glance")
    assert cloud.keystone.validate(alice.id, auth=glance.id).status_code == 200

    cloud.keystone.revoke(alice.id)

    assert cloud.keystone.validate(alice.id, auth=glance.id).status_code == 404
    assert cloud.keystone.validate(glance.id, auth=glance.id).status_code == 200


# openstacksdk 4.22 warns about an InfluxDB default nobody set (tests/clients/test_openstacksdk.py).
@pytest.mark.filterwarnings("ignore::openstack.warnings._RemovedInSDKWarning")
def test_keystone_clouds_yaml_logs_in_with_openstacksdk(cloud, tmp_path):
    path = write_clouds_yaml(tmp_path / "clouds.yaml", cloud.keystone, cloud.users["rita"])

    config = openstack.config.OpenStackConfig(config_files=[str(path)], load_envvars=False)
    connection = openstack.connection.Connection(config=config.get_one("test"))

    assert connection.current_project_id == cloud.projects["alpha"]
    assert connection.endpoint_for("image") == cloud.registry_url
    connection.close()


def test_keystone_token_expires_after_configured_seconds(keystone, tmp_path):
    # A Keystone of its own: the session's keeps the usual hour.
    with running_keystone(tmp_path, token_expiration=2) as short:
        token = short.admin_token()
        assert short.validate(token.id, auth=token.id).status_code == 200

        time.sleep(3)

        assert short.validate(token.id, auth=short.admin_token().id).status_code == 404
