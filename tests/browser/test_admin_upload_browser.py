"""The admin's streaming upload in a real browser (Debian's chromium through
Playwright) against the production server (gunicorn, tests/live.py): a 200 MiB file
sent from the image page straight to PUT /v2/images/{id}/file, its progress bar
advancing, then the image active with the file's size and hashes; a Cancel midway
that leaves the image queued with nothing in the store; and the admin's download
carrying its size.

The server runs with its own TMPDIR: midway through the upload it is empty while
the store holds the upload's `.partial` file, which is what streaming means here (a
multipart form would have been written to a temporary file first).

The browser's upload is held to UPLOAD_RATE through DevTools' network throttling, so
that "midway" lasts long enough for a test to look at it on any machine; nothing is
timed.
"""

import hashlib
import json
import os
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

MiB = 1024 * 1024
SIZE = 200 * MiB
UPLOAD_RATE = 40 * MiB  # bytes per second


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> tuple[Path, str, str]:
    """200 MiB on disk (one random MiB, repeated: quick to write) and its md5 and sha512."""
    chunk = os.urandom(MiB)
    path = tmp_path_factory.mktemp("upload") / "disk-200MiB.raw"
    md5, sha512 = hashlib.md5(), hashlib.sha512()
    with open(path, "wb") as out:
        for _ in range(SIZE // MiB):
            out.write(chunk)
            md5.update(chunk)
            sha512.update(chunk)
    return path, md5.hexdigest(), sha512.hexdigest()


def api(registry, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        registry.url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "X-Auth-Token": registry.tokens["admin"],
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


@pytest.fixture(scope="module")
def admin_session(registry) -> str:
    """A signed-in session of the registry's admin, made once: `manage.py shell` is slow."""
    return registry.session_cookie("admin")


@pytest.fixture
def image_page(page, registry, admin_session):
    """Opens a new queued image's admin page, signed in as the admin, with the
    browser's uploads throttled; returns the image's id."""
    page.context.add_cookies([{"name": "sessionid", "value": admin_session, "url": registry.url}])
    devtools = page.context.new_cdp_session(page)
    devtools.send("Network.enable")
    devtools.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": UPLOAD_RATE},
    )

    def open_new(name: str, disk_format: str = "raw") -> str:
        image = api(
            registry,
            "POST",
            "/v2/images",
            {"name": name, "disk_format": disk_format, "container_format": "bare"},
        )
        page.goto(f"{registry.url}/admin/images/image/{image['id']}/change/")
        return image["id"]

    return open_new


def progress_reaches(page, fraction: float) -> int:
    """Waits (Playwright polls the page) until the bar is past `fraction`; its value."""
    page.wait_for_function(
        f"document.querySelector('#upload progress').value > {int(SIZE * fraction)}",
        timeout=60_000,
    )
    return page.eval_on_selector("#upload progress", "bar => bar.value")


def stored_names(registry, image_id: str) -> list[str]:
    return sorted(name for name in os.listdir(registry.store) if name.startswith(image_id))


def test_streaming_upload_advances_then_the_image_is_active(
    page, registry, image_page, big_file, screenshot
):
    path, md5, sha512 = big_file
    image_id = image_page("browser-200MiB")
    page.set_input_files("#upload input[type=file]", str(path))
    page.click("#upload input[type=submit]")

    seen = [progress_reaches(page, fraction) for fraction in (0.1, 0.25, 0.4)]
    # Midway: the bytes so far are in the store's .partial file, none in a temporary one.
    assert stored_names(registry, image_id) == [f"{image_id}.partial"]
    assert os.listdir(registry.env["TMPDIR"]) == []
    assert api(registry, "GET", f"/v2/images/{image_id}")["status"] == "saving"
    expect(page.locator("#upload .upload-figures")).to_contain_text(" of 200.0 MiB (")
    expect(page.locator("#upload .upload-figures")).to_contain_text("/s, ")
    expect(page.locator("#upload .upload-figures")).to_contain_text(" left")
    screenshot("midway")
    seen += [progress_reaches(page, fraction) for fraction in (0.6, 0.8)]
    # Advancing: never back, and at least three different values on the way.
    assert seen == sorted(seen) and len(set(seen)) >= 3, seen

    expect(page.locator("#upload .upload-message")).to_have_text(
        f"disk-200MiB.raw: 200.0 MiB uploaded; the image is now active (MD5 {md5}). "
        "Reload the page to see its history.",
        timeout=60_000,
    )
    assert page.eval_on_selector("#upload progress", "bar => bar.value") == SIZE
    screenshot("done")
    image = api(registry, "GET", f"/v2/images/{image_id}")
    assert (image["status"], image["size"]) == ("active", SIZE)
    assert (image["checksum"], image["os_hash_value"]) == (md5, sha512)
    assert stored_names(registry, image_id) == [image_id]
    assert os.path.getsize(registry.store / image_id) == SIZE

    # The admin's download, as the browser gets it: streamed, its size known up front.
    page.reload()
    headers = page.evaluate(
        """async url => {
            const response = await fetch(url);
            await response.body.cancel();  // the headers are the point, not 200 MiB
            return [response.status, response.headers.get("content-length"),
                    response.headers.get("content-md5")];
        }""",
        page.get_by_role("link", name="Download data").get_attribute("href"),
    )
    assert headers == [200, str(SIZE), md5]


def test_streaming_upload_cancelled_midway_leaves_the_image_queued_with_nothing_stored(
    page, registry, image_page, big_file, screenshot
):
    path, _, _ = big_file
    image_id = image_page("browser-cancelled")
    page.set_input_files("#upload input[type=file]", str(path))
    page.click("#upload input[type=submit]")
    progress_reaches(page, 0.25)
    assert stored_names(registry, image_id) == [f"{image_id}.partial"]

    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#upload .upload-message")).to_have_text(
        "Cancelled: nothing was stored; the image is queued again.", timeout=30_000
    )
    screenshot("cancelled")
    image = api(registry, "GET", f"/v2/images/{image_id}")
    assert (image["status"], image["size"], image["checksum"]) == ("queued", None, None)
    assert stored_names(registry, image_id) == []
    assert os.listdir(registry.env["TMPDIR"]) == []

    page.reload()
    failed = page.locator("#image-history tr.history-upload_failed")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("admin")
    expect(page.locator("#upload input[type=submit]")).to_be_enabled()  # it may be tried again


def test_streaming_upload_refused_by_the_api_shows_its_message(
    page, registry, image_page, tmp_path
):
    image_id = image_page("claims-qcow2", disk_format="qcow2")
    not_qcow2 = tmp_path / "disk.qcow2"
    not_qcow2.write_bytes(os.urandom(256 * 1024))
    page.set_input_files("#upload input[type=file]", str(not_qcow2))
    page.click("#upload input[type=submit]")
    expect(page.locator("#upload .upload-message")).to_have_text(
        "Not uploaded: Image disk_format qcow2 does not match stream data raw. "
        "The image is queued. Reload the page to see its history."
    )
    assert api(registry, "GET", f"/v2/images/{image_id}")["status"] == "queued"
    assert stored_names(registry, image_id) == []
