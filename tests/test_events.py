"""Notifications (images/events.py, images/event_bus.py) through oslo.messaging's own
in-memory `test` driver: Glance's event names, payloads, publisher id and priorities,
sent only once their transaction commits, never by `noop`, and a bus that cannot be
reached costs the API request nothing but a counted, logged loss.

The tests are transactional: events go on commit, which a test wrapped in a
transaction never reaches."""

import logging
import os
import socket
import warnings
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from images import event_bus, events, services
from images.enums import Status
from images.errors import ImageTooLarge
from images.models import Image
from tests.api import create, patch, token_client, upload
from tests.conftest import stream

pytestmark = pytest.mark.django_db(transaction=True)

# glance/notifier.py: format_image_notification, format_image_member_notification,
# ImageProxy._format_image_send.
GLANCE_IMAGE_FIELDS = {
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "min_disk",
    "min_ram",
    "protected",
    "checksum",
    "owner",
    "disk_format",
    "container_format",
    "size",
    "virtual_size",
    "is_public",
    "visibility",
    "properties",
    "tags",
    "deleted",
    "deleted_at",
}
GLANCE_IMPORT_FIELDS = {"os_glance_importing_to_stores", "os_glance_failed_import"}
GLANCE_MEMBER_FIELDS = {
    "image_id",
    "member_id",
    "status",
    "created_at",
    "updated_at",
    "deleted",
    "deleted_at",
}
GLANCE_SEND_FIELDS = {
    "bytes_sent",
    "image_id",
    "owner_id",
    "receiver_tenant_id",
    "receiver_user_id",
}


class Sent:
    """What oslo.messaging's `test` driver received, as (event_type, priority, payload)."""

    def __init__(self):
        from oslo_messaging.notify import _impl_test

        self.raw = _impl_test.NOTIFICATIONS
        self.raw.clear()

    def reset(self) -> None:
        assert event_bus.bus().flush()
        self.raw.clear()

    def messages(self) -> list[dict]:
        assert event_bus.bus().flush()
        return [message for _ctxt, message, _priority, _retry in self.raw]

    def __call__(self) -> list[tuple[str, str, object]]:
        return [(m["event_type"], m["priority"], m["payload"]) for m in self.messages()]

    def types(self) -> list[str]:
        return [event_type for event_type, _priority, _payload in self()]


@pytest.fixture
def sent(settings):
    settings.IMAGES_NOTIFICATION_DRIVER = ["test"]
    settings.IMAGES_NOTIFICATION_TRANSPORT_URL = "fake://"
    event_bus._oslo_messaging()
    return Sent()


@pytest.fixture
def client(alice):
    return token_client(alice)


def _new(client, **body) -> str:
    response = create(client, name="cirros", disk_format="raw", container_format="bare", **body)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_image_lifecycle_sends_glance_events_with_glance_payloads(client, bob, sent, settings):
    image_id = _new(client, tags=["small"])
    assert upload(client, image_id, b"x" * 1000).status_code == 204
    patch(client, image_id, [{"op": "replace", "path": "/visibility", "value": "shared"}])
    client.post(f"/v2/images/{image_id}/members", {"member": "bob"}, format="json")
    token_client(bob).put(
        f"/v2/images/{image_id}/members/bob", {"status": "accepted"}, format="json"
    )
    assert b"".join(client.get(f"/v2/images/{image_id}/file").streaming_content) == b"x" * 1000
    assert client.delete(f"/v2/images/{image_id}").status_code == 204
    image = Image.objects.get(pk=image_id)
    services.image_restore(image=image, actor="scrubber")
    services.image_delete(image=Image.objects.get(pk=image_id), actor="scrubber")
    settings.IMAGES_SCRUB_DELAY_SECONDS = 0
    assert services.images_scrub_due().scrubbed == [image.pk]

    events = sent()
    assert [event_type for event_type, _priority, _payload in events] == [
        "image.create",
        "image.update",
        "image.prepare",
        "image.upload",
        "image.activate",
        "image.update",
        "image.update",
        "image.member.create",
        "image.member.update",
        "image.send",
        "image.delete",
        "image.restore",
        "image.delete",
        "image.scrub",
    ]
    assert {priority for _type, priority, _payload in events} == {"INFO"}
    assert {m["publisher_id"] for m in sent.messages()} == {"image.localhost"}
    by_type = {}
    for event_type, _priority, payload in events:
        by_type.setdefault(event_type, []).append(payload)
    for event_type in ("image.create", "image.update", "image.activate", "image.delete"):
        assert set(by_type[event_type][0]) == GLANCE_IMAGE_FIELDS, event_type
    for event_type in ("image.prepare", "image.upload"):
        assert set(by_type[event_type][0]) == GLANCE_IMAGE_FIELDS | GLANCE_IMPORT_FIELDS
    created = by_type["image.create"][0]
    assert (created["id"], created["status"], created["tags"], created["owner"]) == (
        image_id,
        "queued",
        ["small"],
        "alice",
    )
    assert created["created_at"].endswith("Z") and created["deleted"] is False
    assert [p["status"] for p in by_type["image.update"]] == ["saving", "active", "active"]
    assert by_type["image.prepare"][0]["status"] == "saving"
    activated = by_type["image.activate"][0]
    assert (activated["status"], activated["size"], activated["checksum"]) == (
        "active",
        1000,
        Image.objects.get(pk=image_id).checksum,
    )
    assert by_type["image.update"][2]["visibility"] == "shared"
    assert [(p["member_id"], p["status"]) for p in by_type["image.member.create"]] == [
        ("bob", "pending")
    ]
    assert by_type["image.member.update"][0]["status"] == "accepted"
    assert set(by_type["image.member.create"][0]) == GLANCE_MEMBER_FIELDS
    assert by_type["image.send"] == [
        {
            "bytes_sent": 1000,
            "image_id": image_id,
            "owner_id": "alice",
            "receiver_tenant_id": "alice",
            "receiver_user_id": "alice",
        }
    ]
    assert set(by_type["image.send"][0]) == GLANCE_SEND_FIELDS
    deleted = by_type["image.delete"][0]
    assert (deleted["status"], deleted["deleted"]) == ("pending_delete", True)
    assert deleted["deleted_at"].endswith("Z")
    assert by_type["image.restore"][0]["status"] == "active"
    scrubbed = by_type["image.scrub"][0]
    assert (scrubbed["status"], scrubbed["deleted"], set(scrubbed)) == (
        "deleted",
        True,
        GLANCE_IMAGE_FIELDS,
    )


def test_events_rolled_back_transaction_sends_nothing(alice, sent):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.image_create(actor=alice, name="never")
        raise RuntimeError("the caller's transaction fails after the create")

    services.image_create(actor=alice, name="kept")
    assert [(t, p["name"]) for t, _priority, p in sent()] == [("image.create", "kept")]


def test_events_noop_driver_builds_and_sends_nothing(client, sent, settings):
    settings.IMAGES_NOTIFICATION_DRIVER = ["noop"]
    image_id = _new(client)
    assert upload(client, image_id, b"data").status_code == 204

    assert sent() == []
    assert event_bus.counts().sent == 0


def test_events_tag_and_deactivate_are_image_updates_as_in_glance(client, admin_user, sent):
    image_id = _new(client)
    upload(client, image_id, b"data")
    sent.reset()
    assert client.put(f"/v2/images/{image_id}/tags/blue").status_code == 204
    assert client.put(f"/v2/images/{image_id}/tags/blue").status_code == 204  # a repeat
    admin = token_client(admin_user)
    assert admin.post(f"/v2/images/{image_id}/actions/deactivate").status_code == 204
    assert admin.post(f"/v2/images/{image_id}/actions/reactivate").status_code == 204
    assert client.delete(f"/v2/images/{image_id}/tags/blue").status_code == 204

    assert [(t, p["status"], p["tags"], p.get("tag")) for t, _priority, p in sent()] == [
        ("image.update", "active", ["blue"], None),
        ("image.tag.create", "active", ["blue"], "blue"),
        ("image.update", "deactivated", ["blue"], None),
        ("image.update", "active", ["blue"], None),
        ("image.update", "active", [], None),
        ("image.tag.delete", "active", [], "blue"),
    ]


def test_upload_failure_sends_image_upload_error_as_glance(alice, client, sent, settings):
    settings.IMAGES_SIZE_CAP = 10
    image_id = _new(client)

    # No size declared (glanceclient's chunked upload): the cap stops the stream.
    with pytest.raises(ImageTooLarge):
        services.image_upload(
            image=Image.objects.get(pk=image_id), actor=alice, stream=stream(b"y" * 100)
        )

    events = sent()
    assert [(t, priority) for t, priority, _payload in events] == [
        ("image.create", "INFO"),
        ("image.update", "INFO"),
        ("image.prepare", "INFO"),
        ("image.upload", "ERROR"),
        ("image.update", "INFO"),
    ]
    failure = events[3][2]
    assert isinstance(failure, str) and image_id in failure and "too large" in failure
    assert events[4][2]["status"] == "queued"


def test_janitor_kill_sends_image_kill(alice, sent, settings):
    settings.IMAGES_UPLOAD_STALE_SECONDS = 60
    image = services.image_create(
        actor=alice, name="abandoned", disk_format="raw", container_format="bare"
    )
    fresh = Image.objects.get(pk=image.pk)
    fresh.begin_upload(now=timezone.now() - timedelta(seconds=120))
    fresh.save()

    assert services.images_kill_stale_uploads().killed == [image.pk]

    assert [(t, p["status"]) for t, _priority, p in sent()] == [
        ("image.create", "queued"),
        ("image.kill", "killed"),
    ]


def test_member_remove_sends_member_delete(client, sent):
    image_id = _new(client, visibility="shared")
    client.post(f"/v2/images/{image_id}/members", {"member": "bob"}, format="json")
    assert client.delete(f"/v2/images/{image_id}/members/bob").status_code == 204

    removed = [p for t, _priority, p in sent() if t == "image.member.delete"]
    assert [(p["member_id"], p["deleted"]) for p in removed] == [("bob", True)]


def test_disabled_notifications_leave_out_a_group(client, sent, settings):
    settings.IMAGES_DISABLED_NOTIFICATIONS = ["image.member", "image.update"]
    image_id = _new(client, visibility="shared")
    client.post(f"/v2/images/{image_id}/members", {"member": "bob"}, format="json")
    upload(client, image_id, b"data")

    assert sent.types() == ["image.create", "image.prepare", "image.upload", "image.activate"]


def test_scrubber_batch_sends_one_scrub_per_image(alice, sent, settings, image_store):
    settings.IMAGES_SCRUB_DELAY_SECONDS = 0
    ids = []
    for number in range(3):
        image = services.image_create(
            actor=alice, name=f"i{number}", disk_format="raw", container_format="bare"
        )
        services.image_upload(image=image, actor=alice, stream=stream(b"z" * 10))
        services.image_delete(image=Image.objects.get(pk=image.pk), actor=alice)
        ids.append(str(image.pk))
    sent.reset()

    assert len(services.images_scrub_due().scrubbed) == 3

    assert sorted((t, p["id"], p["status"]) for t, _priority, p in sent()) == sorted(
        ("image.scrub", image_id, Status.DELETED) for image_id in ids
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket closes


def test_events_dead_bus_neither_fails_api_nor_goes_uncounted(client, settings, caplog):
    settings.IMAGES_NOTIFICATION_DRIVER = ["messagingv2"]
    settings.IMAGES_NOTIFICATION_TRANSPORT_URL = f"rabbit://guest:guest@127.0.0.1:{_closed_port()}/"
    settings.IMAGES_NOTIFICATION_RETRY = 0
    caplog.set_level(logging.WARNING, logger="images.event_bus")

    image_id = _new(client)
    assert upload(client, image_id, b"data").status_code == 204
    assert client.delete(f"/v2/images/{image_id}").status_code == 204

    bus = event_bus.bus()
    assert bus.flush(timeout=60)
    # create, update, prepare, upload, activate, update, delete: none delivered.
    assert (bus.counts.sent, bus.counts.failed) == (0, 7)
    warnings = [r.getMessage() for r in caplog.records if r.name == "images.event_bus"]
    assert warnings[0].startswith("Notification image.create not delivered")
    assert warnings[-1].endswith("7 notifications lost in this process so far")


GLANCE_TASK_FIELDS = {
    "id",
    "type",
    "status",
    "result",
    "owner",
    "message",
    "expires_at",
    "created_at",
    "updated_at",
    "deleted",
    "deleted_at",
}


def test_import_sends_task_events_and_the_image_events(client, sent, run_jobs):
    image_id = _new(client)
    staged = client.put(
        f"/v2/images/{image_id}/stage", b"q" * 64, content_type="application/octet-stream"
    )
    assert staged.status_code == 204
    sent.reset()

    response = run_jobs(
        lambda: client.post(
            f"/v2/images/{image_id}/import", {"method": {"name": "glance-direct"}}, format="json"
        )
    )

    assert response.status_code == 202
    events = sent()
    assert [(t, p.get("status")) for t, _priority, p in events] == [
        ("task.create", "pending"),
        ("image.update", "importing"),
        ("task.processing", "processing"),
        ("image.upload", "active"),
        ("image.activate", "active"),
        ("image.update", "active"),
        ("task.success", "success"),
    ]
    task = events[0][2]
    assert (set(task), task["type"], task["owner"]) == (
        GLANCE_TASK_FIELDS,
        "api_image_import",
        "alice",
    )


def test_bus_forked_child_sends_with_a_sender_of_its_own(sent):
    """gunicorn forks workers: a sender thread does not survive fork(), so a child
    must not queue onto its parent's bus."""
    events.notify("image.update", {"from": "parent"})
    assert sent.types() == ["image.update"]
    parent = event_bus.bus()

    with warnings.catch_warnings():
        # eventlet, which oslo.messaging's dependencies import (we never use it), warns
        # on every fork of the process that imported it.
        warnings.filterwarnings("ignore", "Using fork", DeprecationWarning)
        child = os.fork()
    if child == 0:  # pragma: no cover - the child reports by its exit status
        events.notify("image.update", {"from": "child"})
        mine = event_bus.bus()
        ok = mine is not parent and mine.flush(10) and sent.raw[-1][1]["payload"]["from"] == "child"
        os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
