"""The admin in a real browser (Debian's chromium through Playwright) against a live
server: what recovery staff and administrators actually click."""

import io
import os
import re

import pytest
from playwright.sync_api import expect

from images import services
from images.enums import Operation, Status
from images.models import Image, ImageTransition

# serialized_rollback: the flush after a live-server test would otherwise also
# remove the rows the data migrations made (the admin roles).
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

S = Status


def stored(actor, data: bytes, **fields) -> Image:
    image = services.image_create(actor=actor, disk_format="raw", container_format="bare", **fields)
    return services.image_upload(
        image=image, actor=actor, stream=io.BytesIO(data), declared_size=len(data)
    )


def test_recycle_bin_recovery_staff_restore_an_image_with_its_bytes(
    page, live_server, sign_in, screenshot, recovery_staff, alice
):
    original = os.urandom(256 * 1024 + 17)
    image = services.image_delete(image=stored(alice, original, name="golden-ubuntu"), actor=alice)
    services.image_delete(image=stored(alice, b"other", name="scratch"), actor=alice)

    sign_in("rita")
    page.get_by_role("link", name="Recycle bin").first.click()
    row = page.locator("#result_list tbody tr", has_text="golden-ubuntu")
    expect(row).to_contain_text("active")  # what it comes back as
    expect(row).to_contain_text(re.compile(r"23\xa0hours|1\xa0day"))
    screenshot("bin")
    row.get_by_role("button", name="Restore").click()

    expect(page.locator(".messagelist")).to_contain_text(
        "“golden-ubuntu” was restored; it is now active."
    )
    expect(page.locator("#result_list")).not_to_contain_text("golden-ubuntu")
    screenshot("restored")
    image.refresh_from_db()
    assert image.status == S.ACTIVE
    last = ImageTransition.objects.filter(image=image).last()
    assert (last.source, last.target, last.operation, last.actor) == (
        S.PENDING_DELETE,
        S.ACTIVE,
        Operation.RESTORE,
        "rita",
    )

    page.goto(f"{live_server.url}/admin/images/image/{image.pk}/change/")
    download = page.get_by_role("link", name="Download data")
    response = page.request.get(live_server.url + download.get_attribute("href"))
    assert response.ok
    assert response.body() == original


def test_bulk_delete_administrator_deletes_three_and_finds_them_in_the_recycle_bin(
    page, live_server, sign_in, screenshot, admin_user, alice, settings
):
    settings.IMAGES_SCRUB_DELAY_SECONDS = 6 * 3600
    doomed = [stored(alice, f"data {n}".encode(), name=f"old-build-{n}") for n in (1, 2, 3)]
    stored(alice, b"keep", name="current-build")

    sign_in("admin")
    page.goto(f"{live_server.url}/admin/images/image/")
    for image in doomed:
        page.locator(f"input[name=_selected_action][value='{image.pk}']").check()
    page.select_option("select[name=action]", "delete_selected")
    page.get_by_role("button", name="Go").click()

    plan = page.locator(".delete-plan")
    expect(plan.locator("li")).to_have_count(3)
    expect(plan).to_contain_text("moves to the recycle bin as pending_delete")
    screenshot("confirm")
    page.get_by_role("button", name="Yes, delete").click()

    expect(page.locator(".messagelist li.success")).to_have_count(3)
    expect(page.locator(".messagelist")).to_contain_text(
        "“old-build-2” is in the recycle bin until"
    )
    page.get_by_role("link", name="Recycle bin").first.click()
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)
    for image in doomed:
        expect(page.locator("#result_list")).to_contain_text(image.name)
    expect(rows.first).to_contain_text(re.compile(r"5\xa0hours, 59\xa0minutes|6\xa0hours"))
    screenshot("bin")
    assert sorted(Image.objects.filter(status=S.PENDING_DELETE).values_list("name", flat=True)) == [
        "old-build-1",
        "old-build-2",
        "old-build-3",
    ]
    assert Image.objects.get(name="current-build").status == S.ACTIVE


def test_delete_protected_image_shows_the_refusal(
    page, live_server, sign_in, screenshot, admin_user, alice
):
    image = stored(alice, b"base", name="base-image", protected=True)

    sign_in("admin")
    page.goto(f"{live_server.url}/admin/images/image/{image.pk}/change/")
    # No button for what is not allowed; the page says why instead.
    tools = page.locator(".object-tools")
    expect(tools.get_by_role("link", name="Delete…")).to_have_count(0)
    expect(tools).to_contain_text("Protected: untick “Protected” to delete")
    screenshot("page")

    page.goto(f"{live_server.url}/admin/images/image/{image.pk}/delete/")
    expect(page.locator(".plan-refused")).to_contain_text(
        f"refused. Image {image.pk} is protected and cannot be deleted."
    )
    expect(page.get_by_role("button", name="Yes, delete")).to_have_count(0)
    screenshot()
    image.refresh_from_db()
    assert image.status == S.ACTIVE


def test_image_list_filter_by_status_and_search_by_name(
    page, live_server, sign_in, screenshot, admin_user, alice, bob
):
    stored(alice, b"a", name="ubuntu-24.04")
    stored(bob, b"b", name="ubuntu-22.04")
    services.image_deactivate(image=stored(bob, b"c", name="debian-12"), actor=bob)
    services.image_create(actor=alice, name="ubuntu-daily")

    sign_in("admin")
    page.goto(f"{live_server.url}/admin/images/image/")
    expect(page.locator("#result_list tbody tr")).to_have_count(4)

    page.locator("#changelist-filter").get_by_role("link", name="Active").click()
    names = page.locator("#result_list tbody th.field-name, #result_list tbody td.field-name")
    expect(names).to_have_text(["ubuntu-22.04", "ubuntu-24.04"], ignore_case=False)
    screenshot("active")

    page.fill("#searchbar", "ubuntu")
    page.press("#searchbar", "Enter")
    expect(names).to_have_text(["ubuntu-22.04", "ubuntu-24.04"])
    page.locator("#changelist-filter").get_by_role("link", name="All").first.click()
    expect(names).to_have_text(["ubuntu-daily", "ubuntu-22.04", "ubuntu-24.04"])
    screenshot("search")
