"""The admin in Keystone mode: staff sign in with their Keystone name and password,
their Keystone roles decide their groups (images.keystone_accounts), and the owner
columns name the projects. Against the session's real Keystone; the browser tests
drive the registry (gunicorn, Keystone mode) in chromium, the others run in-process
with the settings pointed at the same Keystone."""

import contextlib
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.contrib.auth import authenticate, get_user_model
from django.core.cache import cache
from playwright.sync_api import expect

from images import keystone_accounts
from images.enums import Status
from tests.factories import image_in
from tests.live import free_port

# Django's own words for a refused admin sign-in.
REFUSED = "Please enter the correct username and password for a staff account."
TIMEOUT = 30


@contextlib.contextmanager
def role_removed(cloud, username: str, role: str):
    """Take a role from a user on their project in Keystone (as the bootstrap admin,
    over HTTP as provision does), and give it back afterwards: the cast is shared by
    the session."""
    user = cloud.users[username]
    url = (
        f"{cloud.keystone.url}/projects/{user.project_id}/users/{user.id}/roles/{cloud.roles[role]}"
    )
    headers = {"X-Auth-Token": cloud.keystone.admin_token().id}
    requests.delete(url, headers=headers, timeout=TIMEOUT).raise_for_status()
    try:
        yield
    finally:
        requests.put(url, headers=headers, timeout=TIMEOUT).raise_for_status()


# --- in-process: the backend and the project names --------------------------------


@pytest.fixture
def keystone_settings(settings, cloud):
    """This process in Keystone mode, as the registry's settings make it."""
    glance = cloud.users["glance"]
    settings.KEYSTONE_AUTHTOKEN = {
        "auth_url": cloud.keystone.url,
        "username": glance.name,
        "password": glance.password,
        "project_name": glance.project,
        "user_domain_name": "Default",
        "project_domain_name": "Default",
    }
    settings.AUTHENTICATION_BACKENDS = ["images.keystone_accounts.KeystoneBackend"]
    cache.clear()  # project names and the "unreachable" mark of earlier tests
    yield settings
    cache.clear()


@pytest.fixture
def keystone_down(keystone_settings):
    """The same settings, with Keystone at a port where nothing listens."""
    keystone_settings.KEYSTONE_AUTHTOKEN = {
        **keystone_settings.KEYSTONE_AUTHTOKEN,
        "auth_url": f"http://127.0.0.1:{free_port()}/v3",
    }
    return keystone_settings


def sign_in(cloud, username: str, password: str | None = None):
    return authenticate(
        None, username=username, password=password or cloud.users[username].password
    )


def group_names(user) -> list[str]:
    return sorted(user.groups.values_list("name", flat=True))


@pytest.mark.django_db
def test_keystone_backend_admin_role_makes_an_image_administrator(
    cloud, keystone_settings, admin_roles
):
    user = sign_in(cloud, "adam")

    assert user.username == "adam"
    assert (user.is_staff, user.is_superuser, user.has_usable_password()) == (True, False, False)
    assert group_names(user) == ["Image administrators"]
    assert user.has_perm("images.deactivate_image")
    assert user.has_perm("images.scrub_image")


@pytest.mark.django_db
def test_keystone_backend_image_recovery_role_makes_recovery_staff(
    cloud, keystone_settings, admin_roles
):
    user = sign_in(cloud, "rita")

    assert user.is_staff
    assert group_names(user) == ["Recovery staff"]
    assert user.has_perm("images.restore_image")
    assert not user.has_perm("images.deactivate_image")


@pytest.mark.django_db
@pytest.mark.parametrize("username", ["alice", "ursula"])
def test_keystone_backend_refuses_roles_without_a_group_and_makes_no_user(
    cloud, keystone_settings, admin_roles, username
):
    assert sign_in(cloud, username) is None
    assert not get_user_model().objects.filter(username=username).exists()


@pytest.mark.django_db
def test_keystone_backend_refuses_a_wrong_password(cloud, keystone_settings, admin_roles):
    assert sign_in(cloud, "adam", "not-adams-password") is None
    assert sign_in(cloud, "nobody", "whatever") is None
    assert not get_user_model().objects.filter(username__in=["adam", "nobody"]).exists()


@pytest.mark.django_db
def test_keystone_backend_refuses_the_registrys_service_user(cloud, keystone_settings, admin_roles):
    # glance holds admin on its project (to validate tokens), which would otherwise
    # make it an Image administrator.
    assert "admin" in cloud.users["glance"].roles
    assert sign_in(cloud, "glance") is None
    assert not get_user_model().objects.filter(username="glance").exists()


@pytest.mark.django_db
def test_keystone_backend_staff_stand_for_no_project(cloud, keystone_settings, admin_roles):
    from images import services

    image = services.image_create(actor=sign_in(cloud, "adam"), name="made in the admin")

    assert image.owner is None


@pytest.mark.django_db
def test_keystone_backend_refuses_when_keystone_is_down(cloud, keystone_down, admin_roles):
    assert sign_in(cloud, "adam") is None


@pytest.mark.django_db
def test_keystone_backend_local_superuser_of_the_same_name_keeps_only_keystone_rights(
    cloud, keystone_settings, admin_roles, django_user_model
):
    from django.contrib.auth.models import Permission

    local = django_user_model.objects.create_superuser(username="rita", password="pw")
    local.user_permissions.add(Permission.objects.get(codename="scrub_image"))

    user = sign_in(cloud, "rita")

    assert user.pk == local.pk
    assert (user.is_staff, user.is_superuser) == (True, False)
    assert list(user.user_permissions.all()) == []
    user = django_user_model.objects.get(pk=user.pk)  # no cached permissions
    assert user.has_perm("images.restore_image")
    assert not user.has_perm("images.scrub_image")


@pytest.mark.django_db
def test_keystone_backend_role_taken_away_leaves_the_user_without_group_or_staff(
    cloud, keystone_settings, admin_roles, django_user_model
):
    assert group_names(sign_in(cloud, "rita")) == ["Recovery staff"]

    with role_removed(cloud, "rita", "image_recovery"):
        assert sign_in(cloud, "rita") is None

        user = django_user_model.objects.get(username="rita")
        assert (user.is_staff, group_names(user)) == (False, [])

    assert group_names(sign_in(cloud, "rita")) == ["Recovery staff"]


@pytest.mark.django_db
def test_project_name_names_projects_as_the_service_user(cloud, keystone_settings):
    assert keystone_accounts.project_name(cloud.projects["alpha"]) == "alpha"
    assert keystone_accounts.project_name(cloud.projects["beta"]) == "beta"
    assert keystone_accounts.project_name(uuid.uuid4().hex) is None
    assert keystone_accounts.project_name(None) is None


@pytest.mark.django_db
def test_project_name_is_cached(cloud, keystone_settings):
    alpha = cloud.projects["alpha"]
    assert keystone_accounts.project_name(alpha) == "alpha"

    keystone_settings.KEYSTONE_AUTHTOKEN = {
        **keystone_settings.KEYSTONE_AUTHTOKEN,
        "auth_url": f"http://127.0.0.1:{free_port()}/v3",
    }

    assert keystone_accounts.project_name(alpha) == "alpha"


@pytest.mark.django_db
def test_project_name_keystone_down_gives_none_and_is_not_asked_again_at_once(cloud, keystone_down):
    alpha = cloud.projects["alpha"]
    started = time.perf_counter()
    assert keystone_accounts.project_name(alpha) is None
    assert time.perf_counter() - started < keystone_accounts.LOOKUP_TIMEOUT

    # Back up: the owners of the rest of the page are not asked for a while...
    keystone_down.KEYSTONE_AUTHTOKEN = {
        **keystone_down.KEYSTONE_AUTHTOKEN,
        "auth_url": cloud.keystone.url,
    }
    assert keystone_accounts.project_name(alpha) is None
    # ...and once that while is over, they are named again.
    cache.delete(keystone_accounts.UNREACHABLE_KEY)
    assert keystone_accounts.project_name(alpha) == "alpha"


@pytest.fixture
def owned_by_alpha(cloud, db):
    return image_in(Status.ACTIVE, name="alpha-base", owner=cloud.projects["alpha"])


def test_admin_names_the_owners_project_in_list_detail_and_filter(
    cloud, keystone_settings, admin_user, client, owned_by_alpha
):
    alpha = cloud.projects["alpha"]
    client.force_login(admin_user)

    listed = client.get("/admin/images/image/").content.decode()
    page = client.get(f"/admin/images/image/{owned_by_alpha.pk}/change/").content.decode()
    filtered = client.get(f"/admin/images/image/?owner={alpha}").content.decode()

    assert f'<td class="field-owner_project">alpha ({alpha})</td>' in listed
    assert '<div class="readonly">alpha</div>' in page
    assert "Project alpha" in filtered
    assert 'placeholder="project id"' in filtered


def test_admin_recycle_bin_names_the_owners_project(cloud, keystone_settings, admin_user, client):
    alpha = cloud.projects["alpha"]
    image_in(Status.PENDING_DELETE, name="gone", owner=alpha)
    client.force_login(admin_user)

    listed = client.get("/admin/images/pendingdeleteimage/").content.decode()

    assert f'<td class="field-owner_project">alpha ({alpha})</td>' in listed


def test_admin_keystone_down_shows_the_owner_id_alone(
    cloud, keystone_down, admin_user, client, owned_by_alpha
):
    alpha = cloud.projects["alpha"]
    client.force_login(admin_user)

    listed = client.get("/admin/images/image/")
    page = client.get(f"/admin/images/image/{owned_by_alpha.pk}/change/")

    assert (listed.status_code, page.status_code) == (200, 200)
    assert f'<td class="field-owner_project">{alpha}</td>' in listed.content.decode()
    assert '<div class="readonly">—</div>' in page.content.decode()


# --- in chromium, against the registry in Keystone mode ----------------------------


def api_image(registry, cloud, username: str, name: str, *, deleted: bool = False) -> str:
    """An image with a few bytes, made through the API with the user's Keystone token;
    its id."""
    session = requests.Session()
    session.headers["X-Auth-Token"] = cloud.token(username).id
    created = session.post(
        f"{registry.url}/v2/images",
        json={"name": name, "disk_format": "raw", "container_format": "bare"},
        timeout=TIMEOUT,
    )
    assert created.status_code == 201, created.text
    image_id = created.json()["id"]
    uploaded = session.put(
        f"{registry.url}/v2/images/{image_id}/file",
        data=b"keystone mode " * 100,
        headers={"Content-Type": "application/octet-stream"},
        timeout=TIMEOUT,
    )
    assert uploaded.status_code == 204, uploaded.text
    if deleted:
        gone = session.delete(f"{registry.url}/v2/images/{image_id}", timeout=TIMEOUT)
        assert gone.status_code == 204, gone.text
    return image_id


def api_status(registry, cloud, image_id: str) -> str | None:
    """The image's status as alice sees it; None when the API has no such image (as
    for a deleted one, in Glance)."""
    response = requests.get(
        f"{registry.url}/v2/images/{image_id}",
        headers={"X-Auth-Token": cloud.token("alice").id},
        timeout=TIMEOUT,
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.json()["status"]


def registry_user(registry, username: str) -> tuple[bool, list[str]]:
    """(is_staff, group names) of the registry's Django user."""
    script = (
        "from django.contrib.auth import get_user_model\n"
        f"u = get_user_model().objects.get(username={username!r})\n"
        "print(u.is_staff, *sorted(u.groups.values_list('name', flat=True)), sep='|')\n"
    )
    out = registry.manage("shell", "-v0", "-c", script)
    staff, *groups = out.strip().splitlines()[-1].split("|")
    return staff == "True", groups


@pytest.fixture
def admin_sign_in(page, registry, cloud):
    def sign_in_as(username: str, password: str | None = None) -> None:
        page.context.clear_cookies()
        page.goto(f"{registry.url}/admin/login/?next=/admin/")
        page.fill("#id_username", username)
        page.fill("#id_password", password or cloud.users[username].password)
        page.click("input[type=submit]")

    return sign_in_as


def test_keystone_admin_adam_signs_in_and_deactivates_an_image(
    page, registry, cloud, admin_sign_in
):
    name = f"alpha-build-{uuid.uuid4().hex[:8]}"
    image_id = api_image(registry, cloud, "alice", name)
    alpha = cloud.projects["alpha"]

    admin_sign_in("adam")
    expect(page).to_have_url(f"{registry.url}/admin/")
    page.goto(f"{registry.url}/admin/images/image/?q={name}")
    row = page.locator("#result_list tbody tr", has_text=name)
    expect(row.locator("td.field-owner_project")).to_have_text(f"alpha ({alpha})")
    row.get_by_role("link", name=name).click()
    expect(page.locator(".field-project_name .readonly")).to_have_text("alpha")
    page.get_by_role("button", name="Deactivate").click()

    expect(page.locator(".messagelist")).to_contain_text(f"“{name}” was deactivated")
    expect(page.locator("#image-history tbody tr").last).to_contain_text("adam")
    assert api_status(registry, cloud, image_id) == "deactivated"
    assert registry_user(registry, "adam") == (True, ["Image administrators"])


def test_keystone_admin_session_ends_with_the_keystone_token(page, registry, cloud, admin_sign_in):
    admin_sign_in("adam")
    expect(page).to_have_url(f"{registry.url}/admin/")

    (session,) = [c for c in page.context.cookies() if c["name"] == "sessionid"]
    expires = datetime.fromtimestamp(session["expires"], UTC)
    lifetime = timedelta(seconds=cloud.keystone.token_expiration)
    assert abs(expires - (datetime.now(UTC) + lifetime)) < timedelta(minutes=2)


def test_keystone_admin_rita_restores_a_deleted_image_from_the_recycle_bin(
    page, registry, cloud, admin_sign_in
):
    name = f"golden-{uuid.uuid4().hex[:8]}"
    image_id = api_image(registry, cloud, "alice", name, deleted=True)
    assert api_status(registry, cloud, image_id) is None

    admin_sign_in("rita")
    expect(page).to_have_url(f"{registry.url}/admin/")
    page.get_by_role("link", name="Recycle bin").first.click()
    row = page.locator("#result_list tbody tr", has_text=name)
    expect(row).to_contain_text(f"alpha ({cloud.projects['alpha']})")
    row.get_by_role("button", name="Restore").click()

    expect(page.locator(".messagelist")).to_contain_text(
        f"“{name}” was restored; it is now active."
    )
    assert api_status(registry, cloud, image_id) == "active"
    assert registry_user(registry, "rita") == (True, ["Recovery staff"])


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", None), ("ursula", None), ("adam", "not-adams-password"), ("nobody", "x")],
    ids=["member", "reader", "wrong-password", "unknown-user"],
)
def test_keystone_admin_refuses_without_a_mapped_role_or_the_password(
    page, registry, admin_sign_in, username, password
):
    admin_sign_in(username, password)

    expect(page.locator(".errornote")).to_contain_text(REFUSED)
    expect(page).to_have_url(f"{registry.url}/admin/login/?next=/admin/")


def test_keystone_admin_role_removed_in_keystone_drops_rita_at_her_next_sign_in(
    page, registry, cloud, admin_sign_in
):
    admin_sign_in("rita")
    expect(page.get_by_role("link", name="Recycle bin").first).to_be_visible()

    with role_removed(cloud, "rita", "image_recovery"):
        admin_sign_in("rita")

        expect(page.locator(".errornote")).to_contain_text(REFUSED)
        assert registry_user(registry, "rita") == (False, [])

    admin_sign_in("rita")
    expect(page.get_by_role("link", name="Recycle bin").first).to_be_visible()
    assert registry_user(registry, "rita") == (True, ["Recovery staff"])
