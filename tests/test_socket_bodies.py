"""images/api/socket_bodies.py under gunicorn: bodies read from the socket are read
exactly, chunked or not, and whatever follows them on the connection is the next
request's."""

import hashlib
import json
import os
import socket

import requests

MiB = 1024 * 1024


def _image(registry) -> str:
    created = requests.post(
        f"{registry.url}/v2/images",
        json={"name": "wire", "disk_format": "raw", "container_format": "bare"},
        headers={"X-Auth-Token": registry.tokens["alice"]},
        timeout=30,
    )
    return created.json()["id"]


def _head(registry, image_id: str, framing: str) -> bytes:
    return (
        f"PUT /v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-Auth-Token: {registry.tokens['alice']}\r\nAccept: application/json\r\n"
        f"Content-Type: application/octet-stream\r\n{framing}\r\n\r\n"
    ).encode()


def _get(registry, image_id: str) -> bytes:
    return (
        f"GET /v2/images/{image_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-Auth-Token: {registry.tokens['alice']}\r\nAccept: application/json\r\n\r\n"
    ).encode()


def _responses(sock: socket.socket, count: int) -> list[tuple[str, bytes]]:
    """`count` responses read off the socket: status line and body each."""
    data, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {answers}"
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
        length = int(headers.get("content-length", 0))
        while len(data) < length:
            data += sock.recv(65536)
        answers.append((lines[0], data[:length]))
        data = data[length:]
    return answers


def _send_and_read(registry, payload: bytes, count: int) -> list[tuple[str, bytes]]:
    with socket.create_connection(("127.0.0.1", registry.port), timeout=60) as sock:
        sock.sendall(payload)
        return _responses(sock, count)


def test_socket_body_chunked_upload_then_pipelined_request(registry):
    image_id = _image(registry)
    data = os.urandom(3 * MiB + 17)
    # Tiny chunks first, an extension, a big chunk, and a trailer after the last one.
    pieces = [data[:1], data[1:3], data[3:70_000], data[70_000:]]
    body = b"1\r\n" + pieces[0] + b"\r\n" + b"2;name=value\r\n" + pieces[1] + b"\r\n"
    body += b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces[2:])
    body += b"0\r\nX-Checksum: trailer\r\n\r\n"
    answers = _send_and_read(
        registry,
        _head(registry, image_id, "Transfer-Encoding: chunked") + body + _get(registry, image_id),
        2,
    )
    assert [status for status, _ in answers] == ["HTTP/1.1 204 No Content", "HTTP/1.1 200 OK"]
    shown = json.loads(answers[1][1])
    assert shown["status"] == "active"
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["size"] == len(data)


def test_socket_body_content_length_upload_then_pipelined_request(registry):
    image_id = _image(registry)
    data = os.urandom(2 * MiB + 3)
    answers = _send_and_read(
        registry,
        _head(registry, image_id, f"Content-Length: {len(data)}") + data + _get(registry, image_id),
        2,
    )
    assert answers[0][0] == "HTTP/1.1 204 No Content"
    assert json.loads(answers[1][1])["os_hash_value"] == hashlib.sha512(data).hexdigest()


def test_socket_body_malformed_chunk_is_refused_and_nothing_kept(registry):
    image_id = _image(registry)
    body = b"10\r\n" + b"x" * 16 + b"\r\nzz\r\n" + b"y" * 100
    with socket.create_connection(("127.0.0.1", registry.port), timeout=60) as sock:
        sock.sendall(_head(registry, image_id, "Transfer-Encoding: chunked") + body)
        status, answer = _responses(sock, 1)[0]
    assert status == "HTTP/1.1 400 Bad Request"
    assert "invalid chunk size" in json.loads(answer)["message"]
    shown = requests.get(
        f"{registry.url}/v2/images/{image_id}",
        headers={"X-Auth-Token": registry.tokens["alice"]},
        timeout=30,
    ).json()
    assert (shown["status"], shown["size"]) == ("queued", None)
