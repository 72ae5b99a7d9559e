"""A deprecation schedule in a real browser: set on the image page, listed on the
index, then passing its dates. Time moves by handing the scrubber's pass a later
`now` (as the daemon's next passes would be), never by sleeping."""

import io
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from images import services
from images.enums import Status
from images.models import Image

# serialized_rollback: as tests/browser/test_admin_browser.py, for the admin roles.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def stored(actor, data: bytes, **fields) -> Image:
    image = services.image_create(actor=actor, disk_format="raw", container_format="bare", **fields)
    return services.image_upload(
        image=image, actor=actor, stream=io.BytesIO(data), declared_size=len(data)
    )


def test_deprecation_schedule_set_in_the_admin_passes_its_dates(
    page, live_server, sign_in, screenshot, admin_user, alice
):
    image = stored(alice, b"old bytes", name="ubuntu-22.04")
    replacement = stored(alice, b"new bytes", name="ubuntu-24.04")
    start = timezone.now().replace(second=0, microsecond=0) + timedelta(days=1)
    dates = {
        "deprecated_at": start,
        "obsolete_at": start + timedelta(days=1),
        "delete_at": start + timedelta(days=2),
    }

    sign_in("admin")
    page.goto(f"{live_server.url}/admin/images/image/{image.pk}/change/")
    for name, moment in dates.items():
        page.fill(f"#id_{name}_0", moment.strftime("%Y-%m-%d"))
        page.fill(f"#id_{name}_1", moment.strftime("%H:%M:%S"))
    page.fill("#id_replacement_id", str(replacement.pk))
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    image.refresh_from_db()
    assert (image.deprecated_at, image.obsolete_at, image.delete_at) == tuple(dates.values())

    page.goto(f"{live_server.url}/admin/")
    panel = page.locator("#deprecation-upcoming tbody tr")
    expect(panel).to_have_count(3)
    expect(panel.nth(0)).to_contain_text("deprecated")
    expect(panel.nth(2)).to_contain_text("deleted")
    expect(panel.nth(2)).to_contain_text("ubuntu-22.04")
    screenshot("upcoming")

    # The scrubber's passes, a day apart.
    for day in (1, 2, 3):
        services.scrubber_pass(now=start + timedelta(days=day - 1, minutes=1))

    image.refresh_from_db()
    assert image.status == Status.PENDING_DELETE
    page.goto(f"{live_server.url}/admin/images/image/{image.pk}/change/")
    history = page.locator("#image-history tbody tr")
    # The upload is two rows (queued → saving → active); the dates passing add theirs.
    expect(history.locator("td:nth-child(4)")).to_have_text(
        ["create", "upload", "upload", "deprecate", "obsolete", "delete"]
    )
    expect(history.nth(5)).to_contain_text("scheduled: delete_at")
    screenshot("passed")
    page.goto(f"{live_server.url}/admin/")
    expect(page.locator("#deprecation-upcoming")).to_contain_text("No deprecation is scheduled.")
