"""GET /v2/images: visibility rules, every filter, sorting and marker paging."""

import datetime as dt

import pytest
from django.utils import timezone

from images import services
from images.models import Image
from tests.api import token_client

pytestmark = pytest.mark.django_db


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [image["id"] for image in response.json()["images"]]


@pytest.fixture
def client(alice):
    return token_client(alice)


def test_list_default_visibility_rules(alice, bob, make_image):
    mine = make_image("active", owner="alice", visibility="private")
    public = make_image("active", owner="bob", visibility="public")
    community = make_image("active", owner="bob", visibility="community")
    make_image("active", owner="bob", visibility="private")
    make_image("active", owner="bob", visibility="shared")
    make_image("killed", owner="alice")
    make_image("pending_delete", owner="alice")
    client = token_client(alice)
    assert set(_ids(client.get("/v2/images"))) == {str(mine.pk), str(public.pk)}
    assert set(_ids(client.get("/v2/images", {"visibility": "community"}))) == {str(community.pk)}
    assert set(_ids(client.get("/v2/images", {"visibility": "all"}))) == {
        str(mine.pk),
        str(public.pk),
        str(community.pk),
    }


def test_list_pending_delete_only_for_recovery_staff(alice, recovery_staff, make_image):
    image = make_image("pending_delete", owner="alice")
    assert _ids(token_client(alice).get("/v2/images", {"status": "pending_delete"})) == []
    listed = token_client(recovery_staff).get("/v2/images", {"status": "pending_delete"})
    assert _ids(listed) == [str(image.pk)]
    shown = listed.json()["images"][0]
    due = image.deleted_at + dt.timedelta(seconds=86400)
    assert shown["os_glance_scrub_at"] == due.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"name": "alpha"}, ["a"]),
        ({"name": "in:alpha,beta"}, ["a", "b"]),
        ({"status": "queued"}, ["b"]),
        ({"status": "in:active,queued"}, ["a", "b", "c"]),
        ({"disk_format": "qcow2"}, ["c"]),
        ({"container_format": "in:ova,bare"}, ["a", "b", "c"]),
        ({"size_min": "10"}, ["c"]),
        ({"size_max": "5"}, ["a"]),
        ({"tag": "x"}, ["a", "c"]),
        ({"tag": ["x", "y"]}, ["c"]),
        ({"protected": "true"}, ["b"]),
        ({"os_hidden": "true"}, ["h"]),
        ({"owner": "alice"}, ["a", "b", "c"]),
        ({"hw_arch": "arm"}, ["b"]),
        ({"checksum": "c" * 32}, ["c"]),
    ],
)
def test_list_filters(client, alice, make_image, query, expected):
    a = make_image("active", owner="alice", name="alpha", disk_format="raw")
    b = make_image("queued", owner="alice", name="beta", protected=True)
    c = make_image("active", owner="alice", name="gamma", disk_format="qcow2")
    h = make_image("active", owner="alice", name="hidden", os_hidden=True)
    Image.objects.filter(pk=a.pk).update(size=1)
    Image.objects.filter(pk=c.pk).update(size=100, checksum="c" * 32)
    services.image_update(image=a, actor=alice, tags=["x"])
    services.image_update(image=c, actor=alice, tags=["x", "y"])
    services.image_update(image=b, actor=alice, properties={"hw_arch": "arm"})
    names = {str(a.pk): "a", str(b.pk): "b", str(c.pk): "c", str(h.pk): "h"}
    assert sorted(names[i] for i in _ids(client.get("/v2/images", query))) == expected


def test_list_date_filters(client, make_image):
    old = make_image("active", owner="alice")
    new = make_image("active", owner="alice")
    past = timezone.now() - dt.timedelta(days=3)
    Image.objects.filter(pk=old.pk).update(created_at=past)
    cutoff = (timezone.now() - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _ids(client.get("/v2/images", {"created_at": f"gt:{cutoff}"})) == [str(new.pk)]
    assert _ids(client.get("/v2/images", {"created_at": f"lte:{cutoff}"})) == [str(old.pk)]
    assert len(_ids(client.get("/v2/images", {"updated_at": f"gte:{cutoff}"}))) == 2


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": "x"}, "Invalid value 'x' for 'limit': must be an integer."),
        ({"limit": "-1"}, "Invalid value '-1' for 'limit': must be >= 0."),
        ({"marker": "8c4a1b3e-06a4-4bb4-8c4e-9b2ef4d1a3c1"}, "No image found with ID 8c4a1b3e"),
        ({"status": "bogus"}, "Invalid status value: bogus"),
        ({"status": "foo:bar"}, "Invalid operator 'foo' for 'status' filter."),
        ({"visibility": "everyone"}, "Invalid visibility value: everyone"),
        ({"member_status": "maybe"}, "Invalid member_status value: maybe"),
        ({"size_min": "big"}, "Invalid value 'big' for 'size_min'"),
        ({"protected": "perhaps"}, "Invalid value 'perhaps' for 'protected' filter"),
        ({"created_at": "gt:yesterday"}, "Invalid time format for created_at: yesterday"),
        ({"created_at": "near:2026-01-01T00:00:00Z"}, "Invalid operator 'near'"),
        ({"sort_key": "owner"}, "Invalid sort key: owner"),
        ({"sort_dir": "up"}, "Invalid sort direction: up"),
        ({"sort": "name:asc", "sort_key": "name"}, "The 'sort' parameter cannot be combined"),
        ({"changes-since": "2026-01-01"}, "The 'changes-since' filter is not supported"),
    ],
)
def test_list_bad_query_answers_400(client, query, message):
    response = client.get("/v2/images", query)
    assert response.status_code == 400
    assert response.json()["message"].startswith(message)


def test_list_default_sort_is_newest_first(client, make_image):
    images = [make_image("queued", owner="alice") for _ in range(3)]
    for i, image in enumerate(images):
        Image.objects.filter(pk=image.pk).update(
            created_at=timezone.now() - dt.timedelta(minutes=10 - i)
        )
    assert _ids(client.get("/v2/images")) == [str(i.pk) for i in reversed(images)]


def test_list_sort_syntaxes_agree(client, make_image):
    for name, size in [("b", 1), ("a", 3), ("c", 2), (None, 5)]:
        image = make_image("active", owner="alice", name=name)
        Image.objects.filter(pk=image.pk).update(size=size)
    new_style = _ids(client.get("/v2/images", {"sort": "name:asc"}))
    old_style = _ids(client.get("/v2/images", {"sort_key": "name", "sort_dir": "asc"}))
    assert new_style == old_style
    names = [Image.objects.get(pk=i).name for i in new_style]
    assert names == [None, "a", "b", "c"]
    by_size = _ids(client.get("/v2/images", {"sort": "size:desc"}))
    assert [Image.objects.get(pk=i).size for i in by_size] == [5, 3, 2, 1]


@pytest.mark.parametrize(
    "sort", ["name:asc", "name:desc", "size:asc", "created_at:desc", "status:asc,size:desc"]
)
def test_list_marker_paging_visits_every_image_once(client, make_image, sort):
    for i in range(7):
        image = make_image(
            "active" if i % 2 else "queued", owner="alice", name=["x", "y", None][i % 3]
        )
        Image.objects.filter(pk=image.pk).update(size=None if i == 3 else i % 4)
    seen, url, pages = [], f"/v2/images?limit=2&sort={sort}", 0
    while url:
        body = client.get(url).json()
        seen += [image["id"] for image in body["images"]]
        url = body.get("next")
        pages += 1
        assert pages < 10
    assert sorted(seen) == sorted(str(pk) for pk in Image.objects.values_list("pk", flat=True))
    assert seen == _ids(client.get(f"/v2/images?limit=100&sort={sort}"))


def test_list_next_only_when_page_full_and_first_drops_marker(client, make_image):
    for _ in range(3):
        make_image("queued", owner="alice")
    first_page = client.get("/v2/images", {"limit": 2, "name": "queued-image"}).json()
    assert first_page["schema"] == "/v2/schemas/images"
    assert first_page["first"] == "/v2/images?limit=2&name=queued-image"
    assert first_page["next"].startswith("/v2/images?limit=2&name=queued-image&marker=")
    second = client.get(first_page["next"]).json()
    assert len(second["images"]) == 1
    assert "next" not in second
    assert second["first"] == first_page["first"]


def test_list_limit_capped_at_1000(client, make_image):
    make_image("queued", owner="alice")
    assert len(_ids(client.get("/v2/images", {"limit": 5000}))) == 1


def test_list_default_limit_is_25(client, make_image):
    for _ in range(26):
        make_image("queued", owner="alice")
    body = client.get("/v2/images").json()
    assert len(body["images"]) == 25
    assert "next" in body
