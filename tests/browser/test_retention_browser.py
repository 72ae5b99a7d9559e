"""Retention rules in a real browser (Debian's chromium through Playwright): an
administrator sets a rule in the admin, and the recycle bin keeps the image it
covers restorable past the default delay, with the rule's time left."""

import io
import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from images import services
from images.enums import Status
from images.models import Image, RetentionRule

# serialized_rollback: as in test_admin_browser, the admin roles survive the flush.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _deleted(actor, name: str, tags: list[str]) -> Image:
    image = services.image_create(
        actor=actor, name=name, disk_format="raw", container_format="bare", tags=tags
    )
    image = services.image_upload(
        image=image, actor=actor, stream=io.BytesIO(b"bytes"), declared_size=5
    )
    return services.image_delete(image=image, actor=actor)


def test_retention_rule_keeps_an_image_restorable_past_the_default(
    page, live_server, sign_in, screenshot, admin_user, alice, settings
):
    settings.IMAGES_SCRUB_DELAY_SECONDS = 3600
    kept = _deleted(alice, "golden-ubuntu", ["golden"])
    plain = _deleted(alice, "scratch", [])

    sign_in("admin")
    page.goto(f"{live_server.url}/admin/images/retentionrule/add/")
    page.fill("#id_name", "golden images")
    page.fill("#id_tag", "golden")
    page.fill("#id_retention", "3 00:00:00")
    page.check("#id_locked")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("golden images")
    screenshot("rules")

    # The scrubber's pass two hours on: past the default delay, within the rule's.
    report = services.images_scrub_due(now=kept.deleted_at + timedelta(hours=2))
    assert report.scrubbed == [plain.pk]

    page.goto(f"{live_server.url}/admin/images/pendingdeleteimage/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("golden-ubuntu")
    expect(rows.first).to_contain_text(re.compile(r"2\xa0days, 23\xa0hours|3\xa0days"))
    screenshot("bin")
    rows.first.get_by_role("button", name="Restore").click()

    expect(page.locator(".messagelist")).to_contain_text(
        "“golden-ubuntu” was restored; it is now active."
    )
    kept.refresh_from_db()
    assert (kept.status, kept.retained_until) == (Status.ACTIVE, None)
    assert RetentionRule.objects.get(name="golden images").locked
