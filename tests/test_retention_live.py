"""Retention rules on the production server (tests/live.py): the rule set by an
operator, images deleted over the API, the scrubber run as `scrub_images` with the
default delay moved to zero through the settings, restore and download over the API."""

import http.client
import json
import subprocess
import sys
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest

from tests.live import ROOT, Registry, running_registry

RULE_SCRIPT = """
from datetime import timedelta
from images.models import RetentionRule
from images.services.retention import retention_rule_save
rule = RetentionRule.objects.filter(name="golden").first() or RetentionRule(
    name="golden", tag="golden", locked=True
)
rule.retention = timedelta(seconds={seconds})
retention_rule_save(rule=rule, actor="operator")
"""


def _call(registry: Registry, method: str, path: str, *, user="alice", body=None, raw=None):
    parts = urlsplit(registry.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"X-Auth-Token": registry.tokens[user], "Accept": "application/json"}
    if body is not None:
        raw = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif raw is not None:
        headers["Content-Type"] = "application/octet-stream"
    try:
        conn.request(method, path, body=raw, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _deleted_image(registry: Registry, name: str, data: bytes, tags: list[str]) -> str:
    body = {"name": name, "disk_format": "raw", "container_format": "bare", "tags": tags}
    status, created = _call(registry, "POST", "/v2/images", body=body)
    assert status == 201, created
    image_id = json.loads(created)["id"]
    assert _call(registry, "PUT", f"/v2/images/{image_id}/file", raw=data)[0] == 204
    assert _call(registry, "DELETE", f"/v2/images/{image_id}")[0] == 204
    return image_id


def _scrub(registry: Registry) -> str:
    """One scrubber pass with the default delay at zero: every image no rule keeps is due."""
    done = subprocess.run(
        [sys.executable, "manage.py", "scrub_images"],
        cwd=ROOT,
        env={**registry.env, "IMAGES_SCRUB_DELAY_SECONDS": "0"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def _binned(registry: Registry) -> dict[str, dict]:
    status, body = _call(registry, "GET", "/v2/images?status=pending_delete", user="rita")
    assert status == 200, body
    return {image["id"]: image for image in json.loads(body)["images"]}


def _isotime(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with running_registry(tmp_path_factory.mktemp("retention"), workers=1, threads=2) as live:
        yield live


def _golden_rule(registry: Registry, *, days: float) -> None:
    """Set (or create) the locked rule for tag "golden", as an operator would."""
    registry.manage("shell", "-c", RULE_SCRIPT.format(seconds=int(days * 86400)))


def test_live_rule_keeps_image_restorable_past_the_default_delay(registry):
    _golden_rule(registry, days=3)
    kept = _deleted_image(registry, "kept", b"golden bytes", ["golden"])
    plain = _deleted_image(registry, "plain", b"plain bytes", [])

    report = _scrub(registry)

    assert report.startswith("scrubbed 1, failed 0")
    binned = _binned(registry)
    assert list(binned) == [kept]
    shown = binned[kept]
    due = _isotime(shown["os_glance_scrub_at"]) - _isotime(shown["deleted_at"])
    assert due == timedelta(days=3)
    assert plain not in binned
    status, _ = _call(registry, "POST", f"/v2/images/{kept}/actions/restore", user="rita")
    assert status in (200, 204)
    assert _call(registry, "GET", f"/v2/images/{kept}/file") == (200, b"golden bytes")


def test_live_rule_shortened_by_the_operator_lets_the_scrubber_take_it(registry):
    _golden_rule(registry, days=3)
    image_id = _deleted_image(registry, "later", b"later bytes", ["golden"])
    assert _scrub(registry).startswith("scrubbed 0, failed 0")

    _golden_rule(registry, days=0)
    report = _scrub(registry)

    assert report.startswith("scrubbed 1, failed 0")
    assert image_id not in _binned(registry)
    assert _call(registry, "GET", f"/v2/images/{image_id}", user="rita")[0] == 404
