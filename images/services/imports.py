"""Interoperable import, as Glance v2.6+ speaks it: stage, import, and the worker's side.

- `image_stage`: PUT /stage, queued → uploading; the bytes go to the store under a
  staged name, hashed and inspected as an upload's are. A failed stage goes back to
  `queued` with nothing left behind.
- `image_import`: POST /import. Checks the method and its input now (a refused URL is
  a 400 and changes nothing), then in one transaction: the task record, the image to
  `importing` with Glance's `os_glance_import_task` lock, and — once that commits —
  the job on the django-tasks queue. The request returns at once (202).
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

import logging
import os
import shutil
import socket
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from images import conversion, policy, remote, selectors, storage
from images.enums import Operation, Status, TaskStatus
from images.errors import Conflict, Forbidden, ImageGone, ImageNotFound, InvalidInput
from images.inspection import Inspection
from images.models import Image, ImageLocation, ImageProperty, ImageTask
from images.policy import Action, Actor
from images.services._transitions import _lock, _transition
from images.services.data import _store_error, _too_large, _upload_limit

logger = logging.getLogger(__name__)

# Glance's import properties: the lock, where the data goes, what failed, who staged.
IMPORT_TASK = "os_glance_import_task"
IMPORTING_TO = "os_glance_importing_to_stores"
FAILED_IMPORT = "os_glance_failed_import"
STAGE_HOST = "os_glance_stage_host"
# Ours: what an image was before the import converted it (IMAGES_IMPORT_CONVERT_TO).
ORIGINAL_FORMAT = "os_glance_original_disk_format"
STORE_ID = "default"  # the one store; Glance's name for it without multi-store

HEARTBEAT_SECONDS = 10.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _set_property(image: Image, name: str, value: str) -> None:
    ImageProperty.objects.update_or_create(image=image, name=name, defaults={"value": value})


def _drop_properties(image: Image, *names: str) -> None:
    ImageProperty.objects.filter(image=image, name__in=names).delete()


def _expiry():
    return timezone.now() + timedelta(hours=settings.IMAGES_TASK_TIME_TO_LIVE_HOURS)


# --- stage ---------------------------------------------------------------------------


def image_stage(
    *, image: Image, actor: Actor, stream: storage.Readable, declared_size: int | None = None
) -> Image:
    """Stage data for a glance-direct import: queued → uploading."""
    if not policy.may(actor, image, Action.UPLOAD):
        raise Forbidden(f"You are not permitted to stage data for image {image.id}.")
    limit, kind = _upload_limit(image.owner)
    if declared_size is not None and declared_size > limit:
        raise _too_large(kind, limit)(declared_size)
    with transaction.atomic():
        fresh = _lock(image.pk)
        _transition(fresh, "stage", operation=Operation.STAGE, actor=actor, reason="stage started")
        _set_property(fresh, STAGE_HOST, socket.gethostname())
    staged = storage.staged_name(image.pk)
    try:
        stored = storage.put(
            image.pk,
            stream,
            name=staged,
            declared_size=declared_size,
            limit=limit,
            on_limit=_too_large(kind, limit),
            inspection=Inspection(image.disk_format, image.container_format),
        )
    except BaseException as exc:
        error = _store_error(exc)
        storage.delete_partial(image.pk, staged)
        _undo(image.pk, actor, reason=f"staging failed: {error.message}", fail_import=False)
        if error is exc:
            raise
        raise error from exc
    with transaction.atomic():
        fresh = _lock(image.pk)
        if fresh.status != Status.UPLOADING:
            storage.delete(staged)
            raise ImageGone(f"Image {image.pk} changed while its data was staged.")
        fresh.size = stored.size  # Glance shows the staged size before the import
        fresh.save(update_fields=["size", "updated_at"])
    return fresh


# --- import --------------------------------------------------------------------------


def import_methods() -> list[str]:
    return list(settings.IMAGES_IMPORT_METHODS)


def _check_stores(stores: list | None, all_stores: bool) -> None:
    if stores is not None and (
        not isinstance(stores, list) or any(store != STORE_ID for store in stores)
    ):
        raise InvalidInput(f"Unknown store: this registry has one store, '{STORE_ID}'.")
    if not isinstance(all_stores, bool):
        raise InvalidInput("all_stores must be a boolean.")


def image_import(
    *,
    image: Image,
    actor: Actor,
    method: str,
    uri: str | None = None,
    stores: list | None = None,
    all_stores: bool = False,
    all_stores_must_succeed: bool = True,
    request_id: str = "",
) -> ImageTask:
    """Start an import; the worker does the rest."""
    if not policy.may(actor, image, Action.UPLOAD):
        raise Forbidden(f"You are not permitted to import data into image {image.id}.")
    if method not in import_methods():
        raise InvalidInput(
            f"Import method {method!r} is not available here; "
            f"use one of: {', '.join(import_methods())}."
        )
    _check_stores(stores, all_stores)
    if method == "web-download":
        if not isinstance(uri, str) or not uri:
            raise InvalidInput("The web-download method needs a 'uri'.")
        remote.check_url(uri)
    task_input = {
        "image_id": str(image.pk),
        "import_req": {"method": {"name": method, **({"uri": uri} if uri else {})}},
        "backend": [STORE_ID],
        "all_stores_must_succeed": all_stores_must_succeed,
    }
    with transaction.atomic():
        fresh = _lock(image.pk)
        wanted = Status.UPLOADING if method == "glance-direct" else Status.QUEUED
        if fresh.status != wanted:
            raise Conflict(
                f"Image {image.pk} is {fresh.status}; the {method} import needs it {wanted}."
            )
        if fresh.properties.filter(name=IMPORT_TASK).exists():
            raise Conflict(f"Image {image.pk} has an import running already.")
        task = ImageTask.objects.create(
            image=fresh,
            input=task_input,
            owner=fresh.owner,
            user_id=policy.actor_name(actor),
            request_id=request_id,
        )
        _transition(
            fresh,
            "begin_import",
            operation=Operation.IMPORT,
            actor=actor,
            reason=f"{method} import started (task {task.pk})",
        )
        _set_property(fresh, IMPORT_TASK, str(task.pk))
        _set_property(fresh, IMPORTING_TO, STORE_ID)
        _drop_properties(fresh, FAILED_IMPORT)
        transaction.on_commit(lambda: _enqueue(task.pk))
    return task


def _enqueue(task_id) -> None:
    from images.tasks import run_import

    run_import.enqueue(str(task_id))


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
    _discard(storage.staged_name(image.pk))


def _fail(task_id, message: str) -> None:
    """The one failure path of an import: task failed, image back to `queued`
    without data, the lock released and the failure recorded, staged data gone."""
    with transaction.atomic():
        task = ImageTask.objects.select_for_update().get(pk=task_id)
        if task.status in (TaskStatus.PENDING, TaskStatus.PROCESSING):
            task.fail(message=message, expires_at=_expiry())
            task.save()
        if task.image_id is not None:
            _undo(task.image_id, task.user_id or "worker", reason=message, fail_import=True)
    if task.image_id is not None:
        _discard(storage.staged_name(task.image_id))


def _undo(image_id, actor: Actor, *, reason: str, fail_import: bool) -> None:
    with transaction.atomic():
        try:
            image = _lock(image_id)
        except ImageNotFound:
            return
        if image.status in (Status.UPLOADING, Status.IMPORTING):
            _transition(
                image, "abort_import", operation=Operation.IMPORT_FAILED, actor=actor, reason=reason
            )
        _drop_properties(image, IMPORT_TASK, IMPORTING_TO, STAGE_HOST)
        if fail_import:
            _set_property(image, FAILED_IMPORT, STORE_ID)


def _discard(name: str) -> None:
    try:
        storage.delete(name)
    except Exception:
        logger.exception("Could not remove import data %s (verify_store finds it)", name)


# --- the janitor ---------------------------------------------------------------------


def imports_reap_stale(*, now=None) -> list:
    """Fail imports whose worker stopped reporting; returns their image ids."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.IMAGES_IMPORT_STALE_SECONDS)
    stale = ImageTask.objects.filter(status=TaskStatus.PROCESSING, heartbeat_at__lt=cutoff)
    reaped = []
    for task_id, image_id, worker in stale.values_list("pk", "image_id", "worker"):
        _fail(task_id, f"The import's worker ({worker}) stopped; it was abandoned.")
        storage.delete_partial(image_id)
        reaped.append(image_id)
    return reaped


def tasks_purge_expired(*, now=None) -> int:
    """Task records past their expiry go, as Glance's would if it purged them."""
    deleted, _ = ImageTask.objects.filter(expires_at__lt=now or timezone.now()).delete()
    return deleted
