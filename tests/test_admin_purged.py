"""images/admin/purged.py: the purged images' page, read-only and searchable."""

import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from images import services
from images.models import PurgedImage

pytestmark = pytest.mark.django_db

LIST = "/admin/images/purgedimage/"


@pytest.fixture
def purged(alice, bob):
    made = []
    for owner, name in ((alice, "cirros"), (bob, "ubuntu")):
        image = services.image_create(
            actor=owner, name=name, disk_format="raw", container_format="bare"
        )
        image = services.image_upload(
            image=image, actor=owner, stream=io.BytesIO(b"x"), declared_size=1
        )
        made.append(services.image_delete(image=image, actor=owner))
    later = timezone.now() + timedelta(days=400)
    services.images_scrub_due(now=later)
    services.images_purge(now=later + timedelta(days=400))
    return made


def _page(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_purged_admin_list_and_search(client, admin_user, purged):
    client.force_login(admin_user)
    page = _page(client, LIST)
    assert "cirros" in page and "ubuntu" in page
    for term in ("cirr", "bob", str(purged[0].pk)):
        found = _page(client, f"{LIST}?q={term}")
        expected, other = ("ubuntu", "cirros") if term == "bob" else ("cirros", "ubuntu")
        assert f">{expected}<" in found and f">{other}<" not in found, term


def test_purged_admin_page_shows_history_read_only(client, admin_user, purged):
    client.force_login(admin_user)
    record = PurgedImage.objects.get(image_id=purged[0].pk)
    page = _page(client, f"{LIST}{record.pk}/change/")
    assert 'class="purged-history"' in page
    assert "<td>pending_delete</td>" in page and "<td>scrubber</td>" in page
    assert 'name="_save"' not in page
    assert client.get(f"{LIST}add/").status_code == 403
    assert client.post(f"{LIST}{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert PurgedImage.objects.count() == 2


def test_purged_admin_for_image_administrators_not_recovery_staff(
    client, django_user_model, admin_roles, purged
):
    def staff(name, group):
        user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        return user

    client.force_login(staff("ingrid", "Image administrators"))
    assert "cirros" in _page(client, LIST)
    client.force_login(staff("ross", "Recovery staff"))
    assert client.get(LIST).status_code == 403
