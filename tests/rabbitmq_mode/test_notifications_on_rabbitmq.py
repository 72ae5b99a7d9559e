"""The production server sends Glance's notifications to a real RabbitMQ, where a
consumer built on oslo.messaging's notification listener (as Ceilometer's is) gets
them; and with the broker gone, the API keeps answering, counting what it lost.

One gunicorn worker: each process sends its events in order, so the sequence a
client makes is the sequence the consumer sees."""

import hashlib
import json
import queue
import re
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from images import event_bus
from tests.live import Registry, running_registry
from tests.test_events import (
    GLANCE_IMAGE_FIELDS,
    GLANCE_IMPORT_FIELDS,
    GLANCE_MEMBER_FIELDS,
    GLANCE_SEND_FIELDS,
)


class Received:
    """The endpoint of an oslo.messaging notification listener: what it is given."""

    def __init__(self):
        self.events: queue.Queue = queue.Queue()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.events.put((event_type, "INFO", publisher_id, payload))

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self.events.put((event_type, "ERROR", publisher_id, payload))

    def take(self, count: int, *, within: float = 60.0) -> list:
        deadline = time.monotonic() + within
        got = []
        while len(got) < count and time.monotonic() < deadline:
            try:
                got.append(self.events.get(timeout=0.5))
            except queue.Empty:
                continue
        return got


@contextmanager
def listening(url: str) -> Iterator[Received]:
    messaging = event_bus._oslo_messaging()
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    conf([], project="consumer", default_config_files=[], default_config_dirs=[])
    transport = messaging.get_notification_transport(conf, url=url)
    received = Received()
    listener = messaging.get_notification_listener(
        transport,
        [messaging.Target(topic="notifications", exchange=event_bus.CONTROL_EXCHANGE)],
        [received],
        executor="threading",
    )
    listener.start()
    try:
        yield received
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()


def call(registry: Registry, method: str, path: str, body=None, *, user="alice", data=None):
    headers = {"X-Auth-Token": registry.tokens[user]}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
        if method == "PATCH":
            headers["Content-Type"] = "application/openstack-images-v2.1-json-patch"
    elif data is not None:
        headers["Content-Type"] = "application/octet-stream"
    request = urllib.request.Request(registry.url + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        content = response.read()
        return response.status, json.loads(content) if content.startswith(b"{") else content


@pytest.fixture
def registry(rabbitmq, tmp_path) -> Iterator[Registry]:
    env = {
        "IMAGES_NOTIFICATION_DRIVER": "messagingv2",
        "IMAGES_NOTIFICATION_TRANSPORT_URL": rabbitmq.url,
        "IMAGES_SCRUB_DELAY_SECONDS": "0",
    }
    with running_registry(tmp_path, workers=1, env=env) as server:
        yield server


def test_rabbitmq_consumer_gets_glance_events_of_an_image_life(rabbitmq, registry):
    with listening(rabbitmq.url) as received:
        code, image = call(
            registry,
            "POST",
            "/v2/images",
            {"name": "cirros", "disk_format": "raw", "container_format": "bare"},
        )
        assert code == 201
        image_id = image["id"]
        assert call(registry, "PUT", f"/v2/images/{image_id}/file", data=b"x" * 4096)[0] == 204
        patch = [{"op": "add", "path": "/os_distro", "value": "cirros"}]
        assert call(registry, "PATCH", f"/v2/images/{image_id}", patch)[0] == 200
        share = {"member": "bob"}
        assert call(registry, "POST", f"/v2/images/{image_id}/members", share)[0] == 200
        accept = {"status": "accepted"}
        path = f"/v2/images/{image_id}/members/bob"
        assert call(registry, "PUT", path, accept, user="bob")[0] == 200
        assert call(registry, "GET", f"/v2/images/{image_id}/file", user="bob")[1] == b"x" * 4096
        assert call(registry, "DELETE", f"/v2/images/{image_id}")[0] == 204
        restore = f"/v2/images/{image_id}/actions/restore"
        assert call(registry, "POST", restore, user="rita", data=b"")[0] in (200, 204)
        assert call(registry, "DELETE", f"/v2/images/{image_id}")[0] == 204
        assert "scrubbed 1," in registry.manage("scrub_images")

        events = received.take(14)

    assert [(event_type, priority) for event_type, priority, *_ in events] == [
        ("image.create", "INFO"),
        ("image.update", "INFO"),
        ("image.prepare", "INFO"),
        ("image.upload", "INFO"),
        ("image.activate", "INFO"),
        ("image.update", "INFO"),
        ("image.update", "INFO"),
        ("image.member.create", "INFO"),
        ("image.member.update", "INFO"),
        ("image.send", "INFO"),
        ("image.delete", "INFO"),
        ("image.restore", "INFO"),
        ("image.delete", "INFO"),
        ("image.scrub", "INFO"),
    ]
    assert {publisher for _type, _priority, publisher, _payload in events} == {"image.localhost"}
    payloads = [payload for *_, payload in events]
    for payload in payloads[:7] + payloads[10:]:
        assert GLANCE_IMAGE_FIELDS <= set(payload) <= GLANCE_IMAGE_FIELDS | GLANCE_IMPORT_FIELDS
        assert payload["id"] == image_id
    assert [p["status"] for p in payloads[:7]] == [
        "queued",
        "saving",
        "saving",
        "active",
        "active",
        "active",
        "active",
    ]
    assert (payloads[4]["size"], payloads[4]["checksum"]) == (
        4096,
        hashlib.md5(b"x" * 4096).hexdigest(),
    )
    assert payloads[6]["properties"] == {"os_distro": "cirros"}
    assert [(set(p), p["member_id"], p["status"]) for p in payloads[7:9]] == [
        (GLANCE_MEMBER_FIELDS, "bob", "pending"),
        (GLANCE_MEMBER_FIELDS, "bob", "accepted"),
    ]
    assert (set(payloads[9]), payloads[9]["bytes_sent"]) == (GLANCE_SEND_FIELDS, 4096)
    assert payloads[9]["receiver_tenant_id"] == "bob"
    assert [(p["status"], p["deleted"]) for p in payloads[10:]] == [
        ("pending_delete", True),
        ("active", False),
        ("pending_delete", True),
        ("deleted", True),
    ]


def _lost(registry: Registry) -> int:
    counts = re.findall(r"(\d+) notifications lost in this process", registry.log.read_text())
    return int(counts[-1]) if counts else 0


def test_rabbitmq_outage_keeps_the_api_answering_and_events_flow_again(rabbitmq, registry):
    body = {"name": "during-outage", "disk_format": "raw", "container_format": "bare"}
    rabbitmq.stop()
    try:
        code, image = call(registry, "POST", "/v2/images", body)
        assert code == 201
        assert call(registry, "PUT", f"/v2/images/{image['id']}/file", data=b"y" * 512)[0] == 204
        assert call(registry, "DELETE", f"/v2/images/{image['id']}")[0] == 204
        deadline = time.monotonic() + 60
        # create, update, prepare, upload, activate, update, delete
        while _lost(registry) < 7 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _lost(registry) == 7
        assert "Notification image.create not delivered" in registry.log.read_text()
    finally:
        rabbitmq.start()

    with listening(rabbitmq.url) as received:
        deadline = time.monotonic() + 60
        events = []
        # The sender reconnects on its next event; until the broker has the queue
        # (declared by that send), a first event may still be lost: send until one
        # arrives.
        while not events and time.monotonic() < deadline:
            code, image = call(registry, "POST", "/v2/images", {**body, "name": "after"})
            assert code == 201
            events = [e for e in received.take(1, within=5) if e[0] == "image.create"]
    assert events and events[0][3]["name"] == "after"
