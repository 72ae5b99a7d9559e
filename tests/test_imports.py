"""Interoperable import in-process (images/services/imports.py and import_worker.py,
images/api/imports.py): stage, glance-direct, the task records, every refusal, the
failure path and the janitor. The jobs run on django-tasks' immediate backend when
the request's transaction commits, so a test sees the worker's outcome;
tests/test_import_worker.py runs the real `db_worker` processes."""

import hashlib
import subprocess
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.db import transaction
from django.utils import timezone

from images import services, storage
from images.enums import Status, TaskStatus
from images.models import Image, ImageTask
from tests.api import create, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(alice):
    return token_client(alice)


@pytest.fixture
def queued(client):
    body = create(client, name="i", disk_format="raw", container_format="bare").json()
    return Image.objects.get(pk=body["id"])


def stage(client, image_id, data: bytes):
    return client.put(f"/v2/images/{image_id}/stage", data, content_type="application/octet-stream")


def start_import(client, image_id, method="glance-direct", **extra):
    return client.post(
        f"/v2/images/{image_id}/import", {"method": {"name": method, **extra}}, format="json"
    )


def files_in(store) -> list[str]:
    return sorted(path.name for path in store.iterdir()) if store.exists() else []


def properties(image) -> dict:
    return dict(image.properties.values_list("name", "value"))


def operations(image) -> list:
    return list(image.transitions.values_list("source", "target", "operation"))


def test_import_glance_direct_stages_then_activates(client, queued, payload, image_store, run_jobs):
    staged = stage(client, queued.pk, payload)
    queued.refresh_from_db()
    assert (staged.status_code, queued.status, queued.size) == (204, Status.UPLOADING, len(payload))
    assert (image_store / storage.staged_name(queued.pk)).read_bytes() == payload

    response = run_jobs(lambda: start_import(client, queued.pk))

    assert (response.status_code, response.content) == (202, b"")
    queued.refresh_from_db()
    assert queued.status == Status.ACTIVE
    assert (queued.size, queued.checksum, queued.os_hash_value) == (
        len(payload),
        hashlib.md5(payload).hexdigest(),
        hashlib.sha512(payload).hexdigest(),
    )
    assert queued.data_format == "raw"
    assert (image_store / str(queued.pk)).read_bytes() == payload
    assert not (image_store / storage.staged_name(queued.pk)).exists()
    assert operations(queued)[1:] == [
        ("queued", "uploading", "stage"),
        ("uploading", "importing", "import"),
        ("importing", "active", "import"),
    ]
    assert not [name for name in properties(queued) if name.startswith("os_glance")]
    task = ImageTask.objects.get(image=queued)
    assert (task.status, task.result, task.owner) == (
        TaskStatus.SUCCESS,
        {"image_id": str(queued.pk)},
        "alice",
    )
    assert task.expires_at > timezone.now() + timedelta(hours=47)


def test_import_task_records_are_served_as_glance_shows_them(
    client, queued, payload, image_store, run_jobs
):
    stage(client, queued.pk, payload)
    run_jobs(lambda: start_import(client, queued.pk))
    task = ImageTask.objects.get(image=queued)

    by_image = client.get(f"/v2/images/{queued.pk}/tasks").json()["tasks"]
    shown = client.get(f"/v2/tasks/{task.pk}").json()
    listed = client.get("/v2/tasks").json()["tasks"]

    assert [t["id"] for t in by_image] == [str(task.pk)] == [t["id"] for t in listed]
    assert shown["status"] == "success"
    assert shown["type"] == "api_image_import"
    assert shown["input"]["import_req"] == {"method": {"name": "glance-direct"}}
    assert shown["self"] == f"/v2/tasks/{task.pk}"
    assert shown["image_id"] == str(queued.pk)


def test_import_tasks_of_another_project_are_not_found(client, bob, queued, payload, run_jobs):
    stage(client, queued.pk, payload)
    run_jobs(lambda: start_import(client, queued.pk))
    task = ImageTask.objects.get(image=queued)
    as_bob = token_client(bob)

    assert as_bob.get(f"/v2/tasks/{task.pk}").status_code == 404
    assert as_bob.get("/v2/tasks").json()["tasks"] == []
    assert as_bob.get("/v2/tasks/not-a-uuid").status_code == 404


def test_import_info_and_create_header_name_the_methods(client, settings):
    settings.IMAGES_IMPORT_METHODS = ["web-download"]
    created = create(client, name="h")
    info = client.get("/v2/info/import").json()

    assert created.headers["OpenStack-image-import-methods"] == "web-download"
    assert info["import-methods"]["value"] == ["web-download"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"method": {"name": "copy-image"}}, 400),  # one store: nothing to copy to
        ({"method": {"name": "no-such-method"}}, 400),
        ({"method": "glance-direct"}, 400),
        ({}, 400),
        ({"method": {"name": "glance-direct"}, "stores": ["elsewhere"]}, 400),
        ({"method": {"name": "web-download"}}, 400),  # no uri
        ({"method": {"name": "web-download", "uri": "ftp://example.org/disk.raw"}}, 400),
        ({"method": {"name": "glance-direct"}}, 409),  # nothing staged: still queued
    ],
)
def test_import_refusals_change_nothing(client, queued, body, code, run_jobs):
    response = run_jobs(lambda: client.post(f"/v2/images/{queued.pk}/import", body, format="json"))

    assert response.status_code == code, response.content
    assert response.json()["code"] == f"{code} {HTTPStatus(code).phrase}"
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED
    assert not ImageTask.objects.exists()
    assert properties(queued) == {}


def test_import_method_turned_off_by_the_operator_is_refused(client, queued, payload, settings):
    settings.IMAGES_IMPORT_METHODS = ["web-download"]
    stage(client, queued.pk, payload)

    response = start_import(client, queued.pk)

    assert response.status_code == 400
    assert "glance-direct" in response.json()["message"]
    queued.refresh_from_db()
    assert queued.status == Status.UPLOADING


def test_import_second_request_while_one_runs_is_a_conflict(client, queued, payload, settings):
    # No job runs (the captured commit callbacks are dropped): the first import stays
    # pending, holding Glance's lock.
    stage(client, queued.pk, payload)
    assert start_import(client, queued.pk).status_code == 202

    again = start_import(client, queued.pk)

    assert again.status_code == 409
    queued.refresh_from_db()
    assert queued.status == Status.IMPORTING
    assert ImageTask.objects.filter(image=queued).count() == 1
    task = ImageTask.objects.get(image=queued)
    assert properties(queued)["os_glance_import_task"] == str(task.pk)


def test_import_stage_without_formats_is_refused(client, image_store):
    image_id = create(client, name="no formats").json()["id"]

    response = stage(client, image_id, b"data")

    assert response.status_code == 400
    assert Image.objects.get(pk=image_id).status == Status.QUEUED
    assert files_in(image_store) == []


def test_import_stage_of_the_wrong_format_leaves_nothing(client, image_store, disk_images):
    image_id = create(client, name="q", disk_format="qcow2", container_format="bare").json()["id"]

    response = stage(client, image_id, disk_images["raw"].path.read_bytes())

    assert response.status_code in (400, 415)
    image = Image.objects.get(pk=image_id)
    assert image.status == Status.QUEUED
    assert files_in(image_store) == []
    assert operations(image)[-1] == ("uploading", "queued", "import_failed")


def test_import_over_the_quota_fails_the_task_and_requeues_the_image(
    client, queued, payload, settings, image_store, run_jobs
):
    stage(client, queued.pk, payload)
    # The quota shrinks between the stage and the import (another upload used it).
    settings.IMAGES_USER_STORAGE_QUOTA = len(payload) - 1

    run_jobs(lambda: start_import(client, queued.pk))

    queued.refresh_from_db()
    task = ImageTask.objects.get(image=queued)
    assert queued.status == Status.QUEUED
    assert (queued.size, queued.checksum) == (None, None)
    assert properties(queued) == {"os_glance_failed_import": "default"}
    assert task.status == TaskStatus.FAILURE
    assert "quota" in task.message
    assert files_in(image_store) == []


def test_import_abandoned_by_its_worker_is_undone_by_the_janitor(
    client, queued, payload, settings, image_store
):
    stage(client, queued.pk, payload)
    start_import(client, queued.pk)  # no worker takes it
    task = ImageTask.objects.get(image=queued)
    # A worker claimed it and went silent (it was SIGKILLed: tests/test_import_worker.py).
    task.start(worker="gone:1", now=timezone.now() - timedelta(hours=1))
    task.save()

    report = services.scrubber_pass()

    queued.refresh_from_db()
    task.refresh_from_db()
    assert report.imports_undone == [queued.pk]
    assert queued.status == Status.QUEUED
    assert properties(queued) == {"os_glance_failed_import": "default"}
    assert task.status == TaskStatus.FAILURE
    assert "gone:1" in task.message
    assert files_in(image_store) == []
    # The lock is released: the image can be staged and imported again.
    assert stage(client, queued.pk, payload).status_code == 204


def test_import_expired_task_records_are_purged_by_the_scrubber(client, queued, payload, run_jobs):
    stage(client, queued.pk, payload)
    run_jobs(lambda: start_import(client, queued.pk))
    task = ImageTask.objects.get(image=queued)

    services.scrubber_pass(now=task.expires_at - timedelta(minutes=1))
    assert ImageTask.objects.filter(pk=task.pk).exists()
    report = services.scrubber_pass(now=task.expires_at + timedelta(minutes=1))

    assert report.tasks_purged == 1
    assert not ImageTask.objects.filter(pk=task.pk).exists()


def test_import_of_an_image_deleted_meanwhile_fails_the_task(
    client, queued, payload, image_store, run_jobs
):
    stage(client, queued.pk, payload)
    start_import(client, queued.pk)  # pending: no job ran
    task = ImageTask.objects.get(image=queued)
    assert client.delete(f"/v2/images/{queued.pk}").status_code == 204

    services.import_run(task.pk)  # the job, late

    task.refresh_from_db()
    assert task.status == TaskStatus.FAILURE
    assert Image.objects.get(pk=queued.pk).status == Status.DELETED
    assert files_in(image_store) == []


def test_import_quota_does_not_count_the_staged_copy_twice(
    client, queued, payload, settings, image_store, run_jobs
):
    settings.IMAGES_USER_STORAGE_QUOTA = len(payload) + 10
    stage(client, queued.pk, payload)

    run_jobs(lambda: start_import(client, queued.pk))

    queued.refresh_from_db()
    assert queued.status == Status.ACTIVE


def test_import_converts_to_the_operators_format(
    client, settings, image_store, run_jobs, disk_images, tmp_path
):
    settings.IMAGES_IMPORT_CONVERT_TO = "raw"
    qcow2 = disk_images["qcow2"]
    image_id = create(client, name="c", disk_format="qcow2", container_format="bare").json()["id"]
    stage(client, image_id, qcow2.path.read_bytes())

    run_jobs(lambda: start_import(client, image_id))

    image = Image.objects.get(pk=image_id)
    stored = image_store / str(image_id)
    assert (image.status, image.disk_format, image.data_format) == (Status.ACTIVE, "raw", "raw")
    assert properties(image) == {"os_glance_original_disk_format": "qcow2"}
    assert image.size == stored.stat().st_size == qcow2.virtual_size
    assert image.os_hash_value == hashlib.sha512(stored.read_bytes()).hexdigest()
    # The guest sees the same disk (qemu-img compares contents, not containers).
    compared = subprocess.run(
        ["qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(qcow2.path), str(stored)],
        capture_output=True,
        text=True,
    )
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert files_in(image_store) == [str(image_id)]


def test_import_stage_whose_request_died_is_undone_by_the_janitor(
    client, queued, payload, settings, image_store
):
    # A stage in progress (its server process was killed mid-body): uploading, with
    # a heartbeat that stopped and a partial file.
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=queued.pk)
        image.stage(now=timezone.now() - timedelta(hours=2))
        image.save()
    partial = image_store / storage.partial_name(queued.pk, storage.staged_name(queued.pk))
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(payload[:1000])
    staged_and_waiting = create(client, name="s", disk_format="raw", container_format="bare")
    waiting_id = staged_and_waiting.json()["id"]
    stage(client, waiting_id, payload)

    report = services.scrubber_pass(now=timezone.now() + timedelta(hours=1))

    queued.refresh_from_db()
    assert report.imports_undone == [queued.pk]
    assert queued.status == Status.QUEUED
    assert operations(queued)[-1] == ("uploading", "queued", "import_failed")
    # A stage that finished waits for its import however long it takes.
    assert Image.objects.get(pk=waiting_id).status == Status.UPLOADING
    assert files_in(image_store) == [storage.staged_name(waiting_id)]


def test_import_tasks_list_pages_newest_first_with_markers(client, alice, image_store):
    images = [create(client, name=f"p{i}").json()["id"] for i in range(5)]
    tasks = [
        ImageTask.objects.create(image_id=image_id, owner="alice", input={"image_id": image_id})
        for image_id in images
    ]
    assert len(tasks) == 5
    order = ImageTask.objects.order_by("-created_at", "id").values_list("pk", flat=True)
    newest_first = [str(pk) for pk in order]

    first = client.get("/v2/tasks?limit=2").json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()

    pages = [[t["id"] for t in page["tasks"]] for page in (first, second, third)]
    assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    assert "next" not in third
    assert client.get("/v2/tasks?limit=0").status_code == 400
    assert client.get("/v2/tasks?marker=not-a-task").status_code == 400
