"""Import from URL in a real browser: an administrator types the URL, the import
runs (django-tasks' immediate backend, in the live server as the request commits)
and the image page shows the active image and its task."""

import pytest
from playwright.sync_api import expect

from images import services
from images.enums import Status, TaskStatus
from images.models import ImageTask
from tests.web_origin import BODY, serving

# serialized_rollback: the flush after a live-server test would otherwise also
# remove the rows the data migrations made (the admin roles).
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_import_from_url_administrator_imports_and_sees_the_task(
    page, live_server, sign_in, screenshot, admin_user, alice, settings
):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    image = services.image_create(
        actor=alice, name="cirros", disk_format="raw", container_format="bare"
    )
    with serving() as origin:
        settings.IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS = ["127.0.0.1"]
        settings.IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS = [origin.port]
        sign_in("admin")
        page.goto(f"{live_server.url}/admin/images/image/{image.pk}/change/")
        page.get_by_role("link", name="Import from URL").click()
        page.fill("input[name=uri]", origin.url("/disk.raw"))
        screenshot("form")
        page.get_by_role("button", name="Import").click()

        expect(page.locator(".messagelist")).to_contain_text("“cirros”: the import from")
        row = page.locator("#import-tasks tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("success")
        expect(row).to_contain_text(origin.url("/disk.raw"))
        screenshot("imported")

    image.refresh_from_db()
    assert (image.status, image.size) == (Status.ACTIVE, len(BODY))
    assert ImageTask.objects.get(image=image).status == TaskStatus.SUCCESS
    expect(page.get_by_role("link", name="Import from URL")).to_have_count(0)
