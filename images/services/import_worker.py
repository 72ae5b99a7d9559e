"""Interoperable import: the worker's side, and the janitor's.

- `import_run`: the worker (images/tasks.py). It claims the task (pending →
  processing), streams the staged or downloaded bytes into the store through the
  same ingest as uploads (size cap and quota, hashes, format inspection), converts
  them when the operator asks (images/conversion.py), and activates the image.
  Any failure takes one path: the data is removed, the image goes back to `queued`
  with `os_glance_failed_import` set and the lock released, the task says why.
- `imports_reap_stale`: the janitor's side (the scrubber loop). A task whose worker
  stopped beating for IMAGES_IMPORT_STALE_SECONDS (SIGKILL, a lost node) fails the
  same way, so no image stays locked in `importing` (Glance bug 1884596).
"""

import os
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from images import conversion, events, remote, selectors, storage
from images.enums import SCRUBBER, Operation, Status, TaskStatus
from images.errors import ImageGone
from images.inspection import Inspection
from images.models import Image, ImageLocation, ImageTask
from images.services._transitions import _lock, _transition
from images.services.data import _store_error, _too_large
from images.services.imports import (
    IMPORT_TASK,
    IMPORTING_TO,
    ORIGINAL_FORMAT,
    STAGE_HOST,
    _discard,
    _drop_properties,
    _expiry,
    _set_property,
    _undo,
    worker_name,
)

HEARTBEAT_SECONDS = 10.0


# --- the worker ----------------------------------------------------------------------


class _Heartbeat:
    """The worker's pulse on its task, and its notice that the image went away."""

    def __init__(self, task_id, image_id):
        self.task_id, self.image_id = task_id, image_id
        self.last = time.monotonic()

    def __call__(self, received: int) -> None:
        now = time.monotonic()
        if now - self.last < HEARTBEAT_SECONDS:
            return
        self.last = now
        ImageTask.objects.filter(pk=self.task_id).update(
            heartbeat_at=timezone.now(), bytes_received=received
        )
        if not Image.objects.filter(pk=self.image_id, status=Status.IMPORTING).exists():
            raise ImageGone(f"Image {self.image_id} was deleted during its import.")


def import_run(task_id) -> None:
    """Do an import's work; every outcome lands on the task and the image."""
    with transaction.atomic():
        try:
            task = ImageTask.objects.select_for_update().get(pk=task_id)
        except ImageTask.DoesNotExist:
            return
        if task.status != TaskStatus.PENDING:
            return  # run already, or reaped: a queue may deliver a job twice
        task.start(worker=worker_name(), now=timezone.now())
        task.save()
        events.task_event("task.processing", task)
    image = task.image
    method = task.input["import_req"]["method"]
    try:
        if image is None or image.status != Status.IMPORTING:
            raise ImageGone(f"Image {task.input['image_id']} is gone; nothing to import.")
        heartbeat = _Heartbeat(task.pk, image.pk)
        stored = _fetch(image, method, heartbeat)
        original_format = None
        if _converting(image):
            original_format = image.disk_format
            stored = _convert(image, stored, heartbeat)
    except BaseException as exc:
        error = _store_error(exc)
        storage.delete_partial(task.input["image_id"])
        _fail(task.pk, error.message)
        if not isinstance(exc, Exception):
            raise  # SystemExit, KeyboardInterrupt: the worker is stopping
        return
    try:
        _activate(task.pk, stored, original_format=original_format)
    except BaseException as exc:
        _discard(stored.name)
        _fail(task.pk, f"recording the import failed: {exc}")
        if not isinstance(exc, Exception):
            raise


def _limit(image: Image) -> tuple[int, str]:
    """The bytes this import may bring: the quota counts the image's own staged size
    already, which the import replaces."""
    cap, quota = settings.IMAGES_SIZE_CAP, settings.IMAGES_USER_STORAGE_QUOTA
    if quota:
        others = selectors.owner_storage_used(image.owner) - (image.size or 0)
        remaining = max(quota - others, 0)
        if remaining < cap:
            return remaining, "quota"
    return cap, "cap"


def _fetch(image: Image, method: dict, heartbeat: _Heartbeat) -> storage.StoredData:
    limit, kind = _limit(image)
    common = {
        "limit": limit,
        "on_limit": _too_large(kind, limit),
        "on_progress": heartbeat,
        "inspection": Inspection(image.disk_format, image.container_format),
    }
    if method["name"] == "web-download":
        remote.check_url(method["uri"])  # the rules may have changed since the request
        with remote.open_remote(method["uri"]) as source:
            return storage.put(image.pk, source, declared_size=source.size, **common)
    staged = storage.staged_name(image.pk)
    size = storage.store().size(staged)
    with storage.open_data(staged) as source:
        return storage.put(image.pk, source, declared_size=size, **common)


def _converting(image: Image) -> bool:
    target = settings.IMAGES_IMPORT_CONVERT_TO
    return bool(target) and image.disk_format not in (target, "iso")


def _convert(image: Image, stored: storage.StoredData, heartbeat) -> storage.StoredData:
    """The stored (inspected) data converted to IMAGES_IMPORT_CONVERT_TO, stored in its
    place, hashed and inspected again as the target format."""
    target = settings.IMAGES_IMPORT_CONVERT_TO
    with tempfile.TemporaryDirectory(prefix="import-") as work:
        source = storage.local_path(stored.name)
        if source is None:  # an object store: the bytes come down to a local file
            source = os.path.join(work, "source")
            with storage.open_data(stored.name) as data, open(source, "wb") as out:
                shutil.copyfileobj(data, out, storage.CHUNK_SIZE)
        converted = conversion.convert(Path(source), image.disk_format, target, Path(work))
        heartbeat(0)
        limit, kind = _limit(image)
        with open(converted.path, "rb") as data:
            return storage.put(
                image.pk,
                data,
                declared_size=os.path.getsize(converted.path),
                limit=limit,
                on_limit=_too_large(kind, limit),
                on_progress=heartbeat,
                inspection=Inspection(target, image.container_format),
            )


def _activate(task_id, stored: storage.StoredData, *, original_format: str | None = None) -> None:
    with transaction.atomic():
        task = ImageTask.objects.select_for_update().get(pk=task_id)
        image = _lock(task.image_id)
        if task.status != TaskStatus.PROCESSING or image.status != Status.IMPORTING:
            raise ImageGone(f"Image {image.pk} changed during its import.")
        verdict = stored.verdict
        _transition(
            image,
            "finish_import",
            operation=Operation.IMPORT,
            actor=task.user_id or "worker",
            reason=f"{stored.size} bytes imported (task {task.pk})",
            size=stored.size,
            checksum=stored.checksum,
            os_hash_algo=stored.os_hash_algo,
            os_hash_value=stored.os_hash_value,
            virtual_size=verdict.virtual_size if verdict else None,
            data_format=verdict.detected if verdict else "",
            disk_format=settings.IMAGES_IMPORT_CONVERT_TO if original_format else None,
        )
        ImageLocation.objects.create(image=image, url=stored.name, in_store=True)
        if original_format:
            _set_property(image, ORIGINAL_FORMAT, original_format)
        _drop_properties(image, IMPORT_TASK, IMPORTING_TO, STAGE_HOST)
        task.succeed(result={"image_id": str(image.pk)}, expires_at=_expiry())
        task.save()
        events.task_event("task.success", task)
    _discard(storage.staged_name(image.pk))


def _fail(task_id, message: str, *, stale_before=None) -> bool:
    """The one failure path of an import: task failed, image back to `queued`
    without data, the lock released and the failure recorded, staged data gone.

    Only while the task is still open: one that has failed or succeeded already
    (the janitor gave up on a slow worker; another janitor was first) keeps its
    outcome, and its image, which may be in a new import by now, is left alone.
    With `stale_before`, only a task still processing with no heartbeat since then
    (the janitor's check, made again under the lock). True if this call failed it."""
    with transaction.atomic():
        task = ImageTask.objects.select_for_update().get(pk=task_id)
        if task.status not in (TaskStatus.PENDING, TaskStatus.PROCESSING):
            return False
        if stale_before is not None and not (
            task.status == TaskStatus.PROCESSING
            and task.heartbeat_at is not None
            and task.heartbeat_at < stale_before
        ):
            return False
        task.fail(message=message, expires_at=_expiry())
        task.save()
        events.task_event("task.failure", task)
        if task.image_id is not None:
            _undo(task.image_id, task.user_id or "worker", reason=message, fail_import=True)
    if task.image_id is not None:
        _discard(storage.staged_name(task.image_id))
    return True


# --- the janitor ---------------------------------------------------------------------


def imports_reap_stale(*, now=None) -> list:
    """Fail imports whose worker stopped reporting; returns their image ids."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.IMAGES_IMPORT_STALE_SECONDS)
    stale = ImageTask.objects.filter(status=TaskStatus.PROCESSING, heartbeat_at__lt=cutoff)
    reaped = []
    for task_id, image_id, worker in stale.values_list("pk", "image_id", "worker"):
        message = f"The import's worker ({worker}) stopped; it was abandoned."
        if not _fail(task_id, message, stale_before=cutoff):
            continue  # another node's janitor reaped it, or the worker spoke up
        storage.delete_partial(image_id)
        reaped.append(image_id)
    return reaped


def stages_reap_stale(*, now=None) -> list:
    """Stages whose request stopped (its server process died mid-body): the image goes
    back to `queued` and the partial data goes; returns their ids. Each is claimed with
    SKIP LOCKED and found stalled again under the lock, so of two janitors one acts,
    and never on a stage that has started again since."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.IMAGES_UPLOAD_STALE_SECONDS)
    stalled = Image.objects.filter(status=Status.UPLOADING, upload_heartbeat_at__lt=cutoff)
    reaped = []
    for image_id in stalled.values_list("pk", flat=True):
        with transaction.atomic():
            mine = stalled.select_for_update(skip_locked=True).filter(pk=image_id)
            if not list(mine.values_list("pk", flat=True)):
                continue
            _undo(image_id, SCRUBBER, reason="staging stopped: no data arrived", fail_import=False)
        storage.delete_partial(image_id, storage.staged_name(image_id))
        reaped.append(image_id)
    return reaped


def tasks_purge_expired(*, now=None) -> int:
    """Task records past their expiry go, as Glance's would if it purged them."""
    deleted, _ = ImageTask.objects.filter(expires_at__lt=now or timezone.now()).delete()
    return deleted
