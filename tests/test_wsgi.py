"""glance_site/wsgi.py under gunicorn: a refused request body never breaks the
client's connection. A session that reuses connections (requests, openstacksdk,
Nova) gets the refusal and its next request answered."""

import contextlib
import socket
import uuid

import requests

ONE_MIB = 1024 * 1024


def _session(registry, user="alice") -> requests.Session:
    session = requests.Session()
    session.headers.update({"X-Auth-Token": registry.tokens[user], "Accept": "application/json"})
    return session


def _active_image(session, registry) -> str:
    created = session.post(
        f"{registry.url}/v2/images",
        json={"name": "wsgi", "disk_format": "raw", "container_format": "bare"},
    ).json()
    put = session.put(
        f"{registry.url}/v2/images/{created['id']}/file",
        data=b"x" * 1024,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 204
    return created["id"]


def _put(session, url, body, **headers):
    return session.put(
        url, data=body, headers={"Content-Type": "application/octet-stream", **headers}
    )


def test_refused_upload_of_unknown_image_keeps_session_usable(registry):
    session = _session(registry)
    missing = uuid.uuid4()
    refused = _put(session, f"{registry.url}/v2/images/{missing}/file", b"\0" * ONE_MIB)
    assert refused.status_code == 404
    assert refused.json()["message"] == f"No image found with ID {missing}"
    after = session.get(f"{registry.url}/v2/images")
    assert after.status_code == 200 and "images" in after.json()


def test_refused_upload_of_active_image_keeps_session_usable(registry):
    session = _session(registry)
    image_id = _active_image(session, registry)
    refused = _put(session, f"{registry.url}/v2/images/{image_id}/file", b"\1" * ONE_MIB)
    assert refused.status_code == 409
    assert refused.headers["Connection"] == "keep-alive"
    shown = session.get(f"{registry.url}/v2/images/{image_id}")
    assert shown.status_code == 200 and shown.json()["size"] == 1024


def test_refused_chunked_upload_keeps_session_usable(registry):
    session = _session(registry)
    body = (b"\2" * (64 * 1024) for _ in range(16))  # 1 MiB, chunked as glanceclient sends
    refused = _put(session, f"{registry.url}/v2/images/{uuid.uuid4()}/file", body)
    assert refused.status_code == 404
    assert session.get(f"{registry.url}/v2/images").status_code == 200


def test_refused_upload_without_token_keeps_session_usable(registry):
    session = requests.Session()
    refused = _put(session, f"{registry.url}/v2/images/{uuid.uuid4()}/file", b"\3" * ONE_MIB)
    assert refused.status_code == 401
    assert session.get(f"{registry.url}/versions").status_code == 200


def test_refused_large_upload_says_connection_close(registry):
    """A body too large to drain is not read: the answer says the connection ends."""
    host, port = registry.url.removeprefix("http://").split(":")
    declared = 1024 * ONE_MIB
    head = (
        f"PUT /v2/images/{uuid.uuid4()}/file HTTP/1.1\r\n"
        f"Host: {host}\r\nX-Auth-Token: {registry.tokens['alice']}\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        # More than the server drains; it may close before taking it all, and its
        # answer is still there to read.
        with contextlib.suppress(OSError):
            sock.sendall(b"\4" * (8 * ONE_MIB))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer: {answer!r}"
            answer += chunk
    status_line, *header_lines = answer.split(b"\r\n\r\n")[0].decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    assert status_line == "HTTP/1.1 404 Not Found"
    assert headers["Connection"] == "close"
