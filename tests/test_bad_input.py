"""Hostile and broken requests against the production server (gunicorn, the `registry`
fixture): a schemathesis run over our own OpenAPI document, and a hand-written corpus.
No answer is a 5xx; the corpus's answers are 4xx with a clear Glance-style message, and
leave the database and the store exactly as they were."""

import http.client
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.live import ROOT, Registry

# --- schemathesis --------------------------------------------------------------------------

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
]
# Not run: positive_data_acceptance (a schema-valid request may still break a domain rule,
# e.g. uploading to an image without formats is a 400), object_level_authorization (one
# token per run; test_security covers who sees what).
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "20261127"))
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


def _request(registry: Registry, method, path, *, token=None, body=None, headers=None):
    """One raw HTTP request: the path goes out exactly as written (no normalisation)."""
    parts = urlsplit(registry.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        sent = {"Accept": "application/json", **(headers or {})}
        if token:
            sent["X-Auth-Token"] = token
        if body is not None and "Content-Length" not in sent:
            sent["Content-Length"] = str(len(body))
        for name, value in sent.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _token(registry: Registry, user: str) -> str:
    return registry.manage("create_token", user, "--create").strip()


def test_api_fuzzed_by_schemathesis_never_fails_or_breaks_its_schema(registry, tmp_path):
    """Every operation of /api/schema/, in the examples, coverage (boundary and invalid
    values), fuzzing and stateful phases, as a user of its own; every check passes."""
    token = _token(registry, "fuzz")
    status, _, body = _request(registry, "GET", "/api/schema/?format=json", token=token)
    assert status == 200
    (tmp_path / "openapi.json").write_bytes(body)
    report = tmp_path / "requests.har"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "run",
            "openapi.json",
            "--url",
            registry.url,
            "--header",
            f"X-Auth-Token: {token}",
            "--header",
            "Accept: application/json",
            "--checks",
            ",".join(CHECKS),
            "--exclude-path-regex",
            "^/api/",  # drf-spectacular's own schema and docs views
            "--max-examples",
            str(FUZZ_EXAMPLES),
            "--seed",
            str(FUZZ_SEED),
            "--workers",
            "1",
            "--max-failures",
            "50",
            "--report",
            "har",
            "--report-har-path",
            str(report),
        ],
        cwd=tmp_path,  # schemathesis and hypothesis keep their caches here
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
            "NO_COLOR": "1",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    entries = json.loads(report.read_text())["log"]["entries"]
    statuses = Counter(entry["response"]["status"] for entry in entries)
    server_errors = [
        f"{e['request']['method']} {e['request']['url']} -> {e['response']['status']}"
        for e in entries
        if e["response"]["status"] >= 500
    ]
    assert server_errors == []
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert len(entries) > 1000, statuses
    # The run reached the API's logic, not only its front door.
    assert statuses[201] > 0 and statuses[200] > 0 and statuses[400] > 0, statuses
    print(f"schemathesis: {len(entries)} requests, statuses {sorted(statuses.items())}")


# --- the hand-written corpus -----------------------------------------------------------------

SNAPSHOT = """
import json
from images.models import (
    Image, ImageLocation, ImageMember, ImageProperty, ImageTag, ImageTransition,
)
rows = Image.objects.values_list("id", "status", "updated_at")
print(json.dumps({
    "images": sorted([str(i), s, str(u)] for i, s, u in rows),
    "transitions": ImageTransition.objects.count(),
    "properties": sorted(ImageProperty.objects.values_list("name", "value")),
    "tags": ImageTag.objects.count(),
    "members": sorted(ImageMember.objects.values_list("member", "status")),
    "locations": ImageLocation.objects.count(),
}))
"""


def _snapshot(registry: Registry) -> dict:
    database = json.loads(registry.manage("shell", "-c", SNAPSHOT).strip().splitlines()[-1])
    # The store, and the server's temporary directory (where spooled uploads would go).
    roots = [registry.store, Path(registry.env["TMPDIR"])]
    files = sorted((str(path), path.stat().st_size) for root in roots for path in root.rglob("*"))
    return {"database": database, "files": files}


@dataclass
class Bad:
    kind: str
    method: str
    path: str
    status: int
    message: str  # a part of the message the answer must carry
    body: bytes | None = None
    headers: dict = field(default_factory=dict)
    glance_body: bool = True  # False: refused by gunicorn before Django (its own page)


def _json(value) -> bytes:
    return json.dumps(value).encode()


PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
JSON = {"Content-Type": "application/json"}
OCTETS = {"Content-Type": "application/octet-stream"}


def corpus(image: str, active: str) -> list[Bad]:
    """`image` is a queued image of the caller's, `active` one with 10 bytes of data."""
    big = "x" * 256
    return [
        # malformed JSON
        Bad("malformed json", "POST", "/v2/images", 400, "Malformed JSON", b'{"name":', JSON),
        Bad("malformed json", "POST", "/v2/images", 400, "Malformed JSON", b"{'name': 'x'}", JSON),
        Bad("malformed json", "POST", "/v2/images", 400, "Malformed JSON", b"\xff\xfe{}", JSON),
        Bad("malformed json", "POST", "/v2/images", 400, "Malformed JSON", b"[" * 100_000, JSON),
        Bad(
            "malformed json",
            "POST",
            "/v2/images",
            400,
            "nested deeper",
            b"[" * 40 + b"]" * 40,
            JSON,
        ),
        Bad("malformed json", "POST", "/v2/images", 400, "must be a JSON object", b"[]", JSON),
        Bad("malformed json", "POST", "/v2/images", 400, "must be a JSON object", b'"x"', JSON),
        Bad("malformed json", "POST", "/v2/images", 400, "No data provided", b"null", JSON),
        Bad(
            "malformed json",
            "PATCH",
            f"/v2/images/{image}",
            400,
            "must be a JSON array",
            _json({"op": "replace", "path": "/name", "value": "x"}),
            PATCH,
        ),
        Bad(
            "malformed json",
            "PATCH",
            f"/v2/images/{image}",
            400,
            "must be a JSON array",
            b"",
            PATCH,
        ),
        Bad("malformed json", "PATCH", f"/v2/images/{image}", 400, "Malformed JSON", b"[{", PATCH),
        Bad("malformed json", "PATCH", f"/v2/images/{image}", 415, "Invalid content type (none)"),
        Bad(
            "malformed json",
            "PATCH",
            f"/v2/images/{image}",
            415,
            'Unsupported media type "application/json"',
            _json([{"op": "replace", "path": "/name", "value": "x"}]),
            JSON,
        ),
        Bad(
            "malformed json",
            "PATCH",
            f"/v2/images/{image}",
            400,
            "Invalid operation: `move`",
            _json([{"op": "move", "from": "/name", "path": "/x"}]),
            PATCH,
        ),
        Bad(
            "malformed json",
            "PATCH",
            f"/v2/images/{image}",
            400,
            "Operations must be JSON objects",
            _json(["replace"]),
            PATCH,
        ),
        Bad(
            "malformed json",
            "PATCH",
            f"/v2/images/{image}",
            400,
            "Json path should start with a '/'",
            _json([{"op": "replace", "path": "name", "value": "x"}]),
            PATCH,
        ),
        Bad(
            "malformed json",
            "PATCH",
            f"/v2/images/{image}",
            400,
            "Nested paths are not allowed",
            _json([{"op": "replace", "path": "/a/b", "value": "x"}]),
            PATCH,
        ),
        Bad(
            "malformed json",
            "POST",
            f"/v2/images/{image}/members",
            400,
            "Malformed JSON",
            b"{",
            JSON,
        ),
        # huge bodies and headers
        Bad(
            "huge",
            "POST",
            "/v2/images",
            413,
            "Request body is larger than",
            _json({"name": "x" * 3_000_000}),
            JSON,
        ),
        Bad(
            "huge",
            "PATCH",
            f"/v2/images/{image}",
            413,
            "Request body is larger than",
            _json([{"op": "add", "path": "/p", "value": "x" * 3_000_000}]),
            PATCH,
        ),
        Bad(
            "huge",
            "GET",
            "/v2/images",
            431,
            "Request Header Fields Too Large",
            headers={"X-Padding": "a" * 10_000},
            glance_body=False,
        ),
        Bad(
            "huge",
            "GET",
            "/v2/images",
            431,
            "Request Header Fields Too Large",
            headers={f"X-Header-{i}": "1" for i in range(150)},
            glance_body=False,
        ),
        Bad("huge", "GET", "/v2/images?name=" + "a" * 9000, 414, "URI Too Long", glance_body=False),
        Bad(
            "huge", "GET", "/v2/images", 401, "Invalid token", headers={"X-Auth-Token": "t" * 6000}
        ),
        Bad(
            "huge",
            "PUT",
            f"/v2/images/{image}/file",
            413,
            "The incoming image is too large",
            b"",
            {**OCTETS, "x-openstack-image-size": str(2**60)},
        ),
        # ids that are no UUID, and path traversal
        Bad("bad id", "GET", "/v2/images/not-a-uuid", 404, "No image found with ID not-a-uuid"),
        Bad("bad id", "GET", "/v2/images/%2e%2e", 404, "No image found with ID .."),
        Bad("bad id", "GET", "/v2/images/../../etc/passwd", 404, "could not be found"),
        Bad("bad id", "GET", "/v2/images/..%2f..%2fetc%2fpasswd", 404, "could not be found"),
        Bad(
            "bad id",
            "GET",
            "/v2/images/%2e%2e%2f%2e%2e%2fregistry.sqlite3/file",
            404,
            "could not be found",
        ),
        Bad(
            "bad id",
            "PUT",
            "/v2/images/%2e%2e/file",
            404,
            "No image found with ID ..",
            b"data",
            OCTETS,
        ),
        Bad(
            "bad id",
            "PUT",
            "/v2/images/..%5c..%5cstore/file",
            404,
            "No image found",
            b"data",
            OCTETS,
        ),
        Bad("bad id", "DELETE", "/v2/images/%2e%2e", 404, "No image found with ID .."),
        Bad("bad id", "GET", f"/v2/images/{image.upper()}0", 404, "No image found"),
        Bad("bad id", "GET", "/v2/images/%ff%fe", 404, "No image found"),
        Bad("bad id", "GET", "/v2/images/1%00", 400, "may not contain NUL"),
        Bad("bad id", "GET", f"/v2/images/{image}/members/..%2f..", 404, "could not be found"),
        Bad("bad id", "GET", f"/v2/images/{image}/members/nobody", 404, "Member nobody not found"),
        Bad(
            "bad id",
            "POST",
            "/v2/images",
            400,
            "id: Not a valid UUID",
            _json({"id": "../../x"}),
            JSON,
        ),
        Bad("bad id", "GET", "/v2/images?marker=../../etc/passwd", 400, "No image found with ID"),
        # invalid enums
        Bad("enum", "POST", "/v2/images", 400, "disk_format", _json({"disk_format": "exe"}), JSON),
        Bad(
            "enum",
            "POST",
            "/v2/images",
            400,
            "container_format",
            _json({"container_format": "zip"}),
            JSON,
        ),
        Bad(
            "enum", "POST", "/v2/images", 400, "visibility", _json({"visibility": "everyone"}), JSON
        ),
        Bad(
            "enum",
            "PATCH",
            f"/v2/images/{image}",
            400,
            '"world" is not a valid choice',
            _json([{"op": "replace", "path": "/visibility", "value": "world"}]),
            PATCH,
        ),
        Bad(
            "enum",
            "PUT",
            f"/v2/images/{image}/members/bob",
            400,
            "status",
            _json({"status": "maybe"}),
            JSON,
        ),
        Bad("enum", "GET", "/v2/images?visibility=everyone", 400, "Invalid visibility value"),
        Bad("enum", "GET", "/v2/images?member_status=maybe", 400, "Invalid member_status value"),
        Bad("enum", "GET", "/v2/images?status=alive", 400, "Invalid status value: alive"),
        Bad(
            "enum",
            "GET",
            "/v2/images?disk_format=in:raw,exe",
            400,
            "Invalid disk_format value: exe",
        ),
        Bad("enum", "GET", "/v2/images?protected=perhaps", 400, "must be true or false"),
        # overlong and non-string values
        Bad(
            "overlong",
            "POST",
            "/v2/images",
            400,
            "no more than 255 characters",
            _json({"name": big}),
            JSON,
        ),
        Bad(
            "overlong",
            "POST",
            "/v2/images",
            400,
            "no more than 255 characters",
            _json({"tags": [big]}),
            JSON,
        ),
        Bad(
            "overlong",
            "POST",
            "/v2/images",
            400,
            "longer than 255 characters",
            _json({big: "v"}),
            JSON,
        ),
        Bad(
            "overlong",
            "PATCH",
            f"/v2/images/{image}",
            400,
            "no more than 255 characters",
            _json([{"op": "replace", "path": "/name", "value": big}]),
            PATCH,
        ),
        Bad("overlong", "PUT", f"/v2/images/{image}/tags/{big}", 400, "longer than 255 characters"),
        Bad(
            "overlong",
            "POST",
            f"/v2/images/{image}/members",
            400,
            "no more than 255 characters",
            _json({"member": big}),
            JSON,
        ),
        Bad(
            "non-string",
            "POST",
            "/v2/images",
            400,
            "is not of type 'string'",
            _json({"name": 5}),
            JSON,
        ),
        Bad(
            "non-string",
            "POST",
            "/v2/images",
            400,
            "is not of type 'string'",
            _json({"hw_x": 5}),
            JSON,
        ),
        Bad(
            "non-string",
            "POST",
            "/v2/images",
            400,
            "is not of type 'string'",
            _json({"hw_x": ["a"]}),
            JSON,
        ),
        Bad(
            "non-string",
            "POST",
            "/v2/images",
            400,
            "is not of type 'boolean'",
            _json({"protected": "yes"}),
            JSON,
        ),
        Bad(
            "non-string",
            "POST",
            "/v2/images",
            400,
            "is not of type 'integer'",
            _json({"min_ram": "1"}),
            JSON,
        ),
        Bad(
            "non-string",
            "POST",
            "/v2/images",
            400,
            "is not of type 'integer'",
            _json({"min_ram": 1.5}),
            JSON,
        ),
        Bad("non-string", "POST", "/v2/images", 400, "Expected a list", _json({"tags": "a"}), JSON),
        Bad(
            "non-string",
            "POST",
            "/v2/images",
            400,
            "is not of type 'string'",
            _json({"tags": [1]}),
            JSON,
        ),
        Bad(
            "non-string",
            "PATCH",
            f"/v2/images/{image}",
            400,
            "is not of type 'string'",
            _json([{"op": "add", "path": "/hw_x", "value": {"a": 1}}]),
            PATCH,
        ),
        Bad(
            "non-string",
            "POST",
            f"/v2/images/{image}/members",
            400,
            "is not of type 'string'",
            _json({"member": ["bob"]}),
            JSON,
        ),
        # read-only and reserved names
        Bad(
            "read-only",
            "POST",
            "/v2/images",
            403,
            "Attribute 'status' is read-only",
            _json({"status": "active"}),
            JSON,
        ),
        Bad(
            "read-only",
            "POST",
            "/v2/images",
            403,
            "Attribute 'os_glance_x' is reserved",
            _json({"os_glance_x": "1"}),
            JSON,
        ),
        Bad(
            "read-only",
            "PATCH",
            f"/v2/images/{image}",
            403,
            "Attribute 'size' is read-only",
            _json([{"op": "replace", "path": "/size", "value": 1}]),
            PATCH,
        ),
        # negative and out-of-range numbers
        Bad(
            "number",
            "POST",
            "/v2/images",
            400,
            "greater than or equal to 0",
            _json({"min_ram": -1}),
            JSON,
        ),
        Bad(
            "number",
            "POST",
            "/v2/images",
            400,
            "greater than or equal to 0",
            _json({"min_disk": -5}),
            JSON,
        ),
        Bad(
            "number",
            "POST",
            "/v2/images",
            400,
            "less than or equal to 2147483647",
            _json({"min_ram": 2**31}),
            JSON,
        ),
        Bad(
            "number",
            "POST",
            "/v2/images",
            400,
            "less than or equal to 2147483647",
            _json({"min_disk": 10**30}),
            JSON,
        ),
        Bad(
            "number",
            "POST",
            "/v2/images",
            403,
            "Attribute 'size' is read-only",
            _json({"size": -1}),
            JSON,
        ),
        Bad(
            "number",
            "PATCH",
            f"/v2/images/{image}",
            400,
            "greater than or equal to 0",
            _json([{"op": "replace", "path": "/min_ram", "value": -1}]),
            PATCH,
        ),
        Bad("number", "GET", "/v2/images?size_min=-1", 400, "must be >= 0"),
        Bad("number", "GET", "/v2/images?size_max=99999999999999999999999", 400, "must be <= "),
        Bad(
            "number",
            "PUT",
            f"/v2/images/{image}/file",
            400,
            "Invalid X_OPENSTACK_IMAGE_SIZE",
            b"",
            {**OCTETS, "x-openstack-image-size": "-5"},
        ),
        Bad(
            "number",
            "PUT",
            f"/v2/images/{image}/file",
            400,
            "Invalid X_OPENSTACK_IMAGE_SIZE",
            b"",
            {**OCTETS, "x-openstack-image-size": "9" * 5000},
        ),
        # unicode edge cases
        Bad("unicode", "POST", "/v2/images", 400, "NUL characters", b'{"name": "a\\u0000b"}', JSON),
        Bad("unicode", "POST", "/v2/images", 400, "NUL characters", b'{"hw_\\u0000": "v"}', JSON),
        Bad(
            "unicode",
            "POST",
            "/v2/images",
            400,
            "unpaired surrogates",
            b'{"name": "\\ud800"}',
            JSON,
        ),
        Bad(
            "unicode", "POST", "/v2/images", 400, "unpaired surrogates", b'{"\\udc00x": "v"}', JSON
        ),
        Bad(
            "unicode",
            "POST",
            "/v2/images",
            400,
            "unpaired surrogates",
            b'{"tags": ["\\udfff\\ud800"]}',
            JSON,
        ),
        Bad(
            "unicode",
            "PATCH",
            f"/v2/images/{image}",
            400,
            "NUL characters",
            b'[{"op": "add", "path": "/p", "value": "\\u0000"}]',
            PATCH,
        ),
        Bad(
            "unicode",
            "PATCH",
            f"/v2/images/{image}",
            400,
            "unpaired surrogates",
            b'[{"op": "add", "path": "/p\\ud83d", "value": "v"}]',
            PATCH,
        ),
        Bad(
            "unicode",
            "POST",
            "/v2/images",
            400,
            "disk_format",
            _json({"disk_format": "\u202eraw"}),
            JSON,
        ),
        Bad(
            "unicode",
            "POST",
            "/v2/images",
            400,
            "visibility",
            _json({"visibility": "\U0001f984"}),
            JSON,
        ),
        Bad(
            "unicode",
            "PATCH",
            f"/v2/images/{image}",
            409,
            "Property \U0001f984 does not exist",
            _json([{"op": "replace", "path": "/\U0001f984", "value": "v"}]),
            PATCH,
        ),
        Bad("unicode", "GET", "/v2/images/%E2%80%AE%F0%9F%A6%84", 404, "No image found"),
        Bad("unicode", "GET", "/v2/images?name=%00", 400, "may not contain NUL"),
        Bad("unicode", "GET", "/v2/images?hw%00=1", 400, "may not contain NUL"),
        Bad("unicode", "GET", "/v2/images?status=%E2%80%AEactive", 400, "Invalid status value"),
        Bad("unicode", "GET", "/v2/images?status=%ff", 400, "Invalid status value"),
        Bad("unicode", "PUT", f"/v2/images/{image}/tags/a%00b", 400, "may not contain NUL"),
        Bad("unicode", "GET", f"/v2/images/{image}/members/%00", 400, "may not contain NUL"),
        Bad(
            "unicode",
            "POST",
            "/v2/images",
            400,
            "NUL characters",
            _json({"member": "x"}).replace(b"x", b"\\u0000"),
            JSON,
        ),
        # unknown query operators
        Bad(
            "operator",
            "GET",
            "/v2/images?status=foo:bar",
            400,
            "Invalid operator 'foo' for 'status'",
        ),
        Bad("operator", "GET", "/v2/images?disk_format=like:raw", 400, "Invalid operator 'like'"),
        Bad(
            "operator",
            "GET",
            "/v2/images?created_at=around:2026-01-01T00:00:00Z",
            400,
            "Invalid operator 'around'",
        ),
        Bad("operator", "GET", "/v2/images?updated_at=gt:yesterday", 400, "Invalid time format"),
        Bad(
            "operator",
            "GET",
            "/v2/images?created_at=gt:9999-12-31T23:59:59-23:59",
            400,
            "Invalid time format",
        ),
        Bad(
            "operator",
            "GET",
            "/v2/images?created_at=lt:0001-01-01T00:00:00%2B23:59",
            400,
            "Invalid time format",
        ),
        Bad(
            "operator", "GET", "/v2/images?changes-since=2026-01-01", 400, "'changes-since' filter"
        ),
        Bad("operator", "GET", "/v2/images?id=in:1,2", 400, "Invalid id value"),
        # bad sort keys
        Bad("sort", "GET", "/v2/images?sort_key=password", 400, "Invalid sort key: password"),
        Bad(
            "sort", "GET", "/v2/images?sort=name:sideways", 400, "Invalid sort direction: sideways"
        ),
        Bad("sort", "GET", "/v2/images?sort=owner", 400, "Invalid sort key: owner"),
        Bad("sort", "GET", "/v2/images?sort=name&sort_key=name", 400, "cannot be combined"),
        Bad("sort", "GET", "/v2/images?sort_dir=up", 400, "Invalid sort direction: up"),
        Bad(
            "sort",
            "GET",
            "/v2/images?sort_key=name&sort_key=id&sort_dir=asc&sort_dir=asc&sort_dir=asc",
            400,
            "does not match",
        ),
        # bad markers
        Bad("marker", "GET", "/v2/images?marker=nope", 400, "No image found with ID nope"),
        Bad(
            "marker",
            "GET",
            "/v2/images?marker=00000000-0000-0000-0000-000000000000",
            400,
            "No image found",
        ),
        Bad("marker", "GET", "/v2/images?marker=", 400, "No image found with ID"),
        # bad limits
        Bad("limit", "GET", "/v2/images?limit=abc", 400, "must be an integer"),
        Bad("limit", "GET", "/v2/images?limit=-1", 400, "must be >= 0"),
        Bad("limit", "GET", "/v2/images?limit=1.5", 400, "must be an integer"),
        Bad("limit", "GET", "/v2/images?limit=", 400, "must be an integer"),
        Bad("limit", "GET", "/v2/images?limit=1e3", 400, "must be an integer"),
        # bad ranges
        Bad(
            "range",
            "GET",
            f"/v2/images/{active}/file",
            416,
            "not satisfiable",
            headers={"Range": "bytes=5-2"},
        ),
        Bad(
            "range",
            "GET",
            f"/v2/images/{active}/file",
            416,
            "not satisfiable",
            headers={"Range": "bytes=10-"},
        ),
        Bad(
            "range",
            "GET",
            f"/v2/images/{active}/file",
            416,
            "not satisfiable",
            headers={"Range": "bytes=abc"},
        ),
        Bad(
            "range",
            "GET",
            f"/v2/images/{active}/file",
            416,
            "not satisfiable",
            headers={"Range": "bytes=0-1,3-4"},
        ),
        Bad(
            "range",
            "GET",
            f"/v2/images/{active}/file",
            416,
            "not satisfiable",
            headers={"Range": "bytes=-0"},
        ),
        Bad(
            "range",
            "GET",
            f"/v2/images/{active}/file",
            416,
            "not satisfiable",
            headers={"Range": "bytes=" + "9" * 4000 + "-"},
        ),
        # wrong media types and methods
        Bad(
            "media type",
            "PUT",
            f"/v2/images/{image}/file",
            415,
            "Invalid content type application/json",
            b"{}",
            JSON,
        ),
        Bad(
            "media type",
            "PUT",
            f"/v2/images/{image}/file",
            415,
            "Invalid content type (none)",
            b"data",
        ),
        Bad(
            "media type",
            "POST",
            "/v2/images",
            415,
            "Unsupported media type",
            b"name=x",
            {"Content-Type": "text/csv"},
        ),
        Bad("method", "PUT", "/v2/images", 405, 'Method "PUT" not allowed', b"{}", JSON),
        Bad("method", "POST", f"/v2/images/{image}/file", 405, 'Method "POST" not allowed'),
    ]


@pytest.fixture(scope="module")
def mallory(registry):
    """A user of its own on the shared server, with a queued and an active image."""
    token = _token(registry, "mallory")
    status, _, body = _request(
        registry,
        "POST",
        "/v2/images",
        token=token,
        headers=JSON,
        body=_json({"name": "target", "disk_format": "raw", "container_format": "bare"}),
    )
    assert status == 201
    image = json.loads(body)["id"]
    status, _, body = _request(
        registry,
        "POST",
        "/v2/images",
        token=token,
        headers=JSON,
        body=_json({"name": "with-data", "disk_format": "raw", "container_format": "bare"}),
    )
    active = json.loads(body)["id"]
    status, _, _ = _request(
        registry,
        "PUT",
        f"/v2/images/{active}/file",
        token=token,
        headers=OCTETS,
        body=b"0123456789",
    )
    assert status == 204
    return token, image, active


def test_bad_input_corpus_answers_4xx_with_message_and_changes_nothing(registry, mallory):
    token, image, active = mallory
    cases = corpus(image, active)
    before = _snapshot(registry)
    wrong = []
    for case in cases:
        headers = dict(case.headers)
        auth = headers.pop("X-Auth-Token", token)
        status, response_headers, body = _request(
            registry, case.method, case.path, token=auth, body=case.body, headers=headers
        )
        text = body.decode("utf-8", "replace")
        if case.glance_body:
            error = json.loads(body) if status != 204 else {}
            ok = error.get("code") == f"{status} {HTTPStatus(status).phrase}"
            ok = ok and error.get("title") == HTTPStatus(status).phrase
            ok = ok and case.message in error.get("message", "")
        else:  # gunicorn's own page: the status line and its reason
            ok = case.message in text
        ok = ok and status == case.status
        if ok and case.status == 405:
            ok = "Allow" in response_headers
        if ok and case.status == 416:
            ok = response_headers.get("Content-Range") == "bytes */10"
        if not ok:
            wrong.append(f"{case.kind}: {case.method} {case.path[:80]} -> {status} {text[:200]}")
    assert wrong == [], "\n".join(wrong)
    assert _snapshot(registry) == before
    kinds = Counter(case.kind for case in cases)
    print(f"bad-input corpus: {len(cases)} requests, {sorted(kinds.items())}")
