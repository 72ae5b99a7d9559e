"""The admin index's charts in chromium, from a seeded history: drawn, visible, and
the screenshot the README shows. It goes to artifacts/ on every run, and replaces
images/static/images/admin-index.png with DOCS_SCREENSHOTS=1, so that a test run leaves the
checkout as it was."""

import os
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from images.models import Image
from tests.factories import seeded_registry

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ROOT = Path(__file__).resolve().parents[2]
CHARTS = [
    "chart-images-per-status",
    "chart-bytes-per-status",
    "chart-uploads-and-deletions",
    "chart-recycle-bin-scrubs-due",
    "chart-top-owners-by-bytes",
]


def test_dashboard_charts_render_in_chromium(page, live_server, sign_in, admin_user, settings):
    settings.IMAGES_SCRUB_DELAY_SECONDS = 7 * 86400
    seeded_registry(400, now=timezone.now())

    sign_in("admin")
    for chart in CHARTS:
        svg = page.locator(f"#{chart} svg")
        expect(svg).to_be_visible()
        assert page.locator(f"#{chart} svg rect.bar").count() > 0, chart
    box = page.locator("#chart-images-per-status svg").bounding_box()
    assert box["width"] > 300 and box["height"] > 100
    # a bar's tooltip is its <title>; the table behind <details> opens on a click
    title = page.locator("#chart-images-per-status rect.bar title").last.text_content()
    assert title.startswith(timezone.localdate().isoformat() + " · ")
    page.locator("#chart-top-owners-by-bytes summary").click()
    expect(page.locator("#chart-top-owners-by-bytes table")).to_contain_text("alice")
    page.locator("#chart-top-owners-by-bytes summary").click()

    # the axes' text takes the admin's theme colour: light and dark differ
    fill = "el => getComputedStyle(el).fill"
    tick = page.locator("#chart-images-per-status text.tick").first
    light = tick.evaluate(fill)
    page.emulate_media(color_scheme="dark")
    assert tick.evaluate(fill) != light
    page.emulate_media(color_scheme="light")

    docs = os.environ.get("DOCS_SCREENSHOTS") == "1"
    target = (ROOT / "images/static/images" if docs else ROOT / "artifacts") / "admin-index.png"
    target.parent.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("#content").screenshot(path=str(target), type="png")
    assert target.stat().st_size <= 200 * 1024


def test_image_page_timeline_renders_in_chromium(
    page, live_server, sign_in, admin_user, screenshot
):
    image = seeded_registry(1, now=timezone.now(), seed=3)[0]
    sign_in("admin")
    page.goto(f"{live_server.url}/admin/images/image/{image.pk}/change/")
    expect(page.locator("#image-timeline svg")).to_be_visible()
    assert page.locator("#image-timeline rect.bar").count() == image.transitions.count()
    assert Image.objects.count() == 1
    screenshot()
