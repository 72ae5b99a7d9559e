"""The production server (DEBUG off, collected static files) serves the pages a
person opens in a browser, with their styles."""

import urllib.request


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode(errors="replace")


def test_pages_admin_login_renders_with_styles(registry):
    status, body = _get(f"{registry.url}/admin/login/")
    assert status == 200
    assert "Image registry" in body
    assert _get(f"{registry.url}/static/admin/css/base.css")[0] == 200


def test_pages_api_login_renders_with_styles(registry):
    status, body = _get(f"{registry.url}/api-auth/login/")
    assert status == 200
    assert "Image registry" in body
    assert _get(f"{registry.url}/static/rest_framework/css/bootstrap.min.css")[0] == 200
