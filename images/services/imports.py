"""Interoperable import, as Glance v2.6+ speaks it: the requests' side.

- `image_stage`: PUT /stage, queued → uploading; the bytes go to the store under a
  staged name, hashed and inspected as an upload's are. A failed stage goes back to
  `queued` with nothing left behind.
- `image_import`: POST /import. Checks the method and its input now (a refused URL is
  a 400 and changes nothing), then in one transaction: the task record, the image to
  `importing` with Glance's `os_glance_import_task` lock, and — once that commits —
  the job on the django-tasks queue. The request returns at once (202).

The worker's side, and the janitor's, are in import_worker.py.
"""

import logging
import os
import socket
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from images import events, policy, remote, storage
from images.enums import Operation, Status
from images.errors import Conflict, Forbidden, ImageGone, ImageNotFound, InvalidInput
from images.inspection import Inspection
from images.models import Image, ImageProperty, ImageTask
from images.policy import Action, Actor
from images.services._transitions import _lock, _transition
from images.services.data import _Heartbeat, _store_error, _too_large, _upload_limit

logger = logging.getLogger(__name__)

# Glance's import properties: the lock, where the data goes, what failed, who staged.
IMPORT_TASK = "os_glance_import_task"
IMPORTING_TO = "os_glance_importing_to_stores"
FAILED_IMPORT = "os_glance_failed_import"
STAGE_HOST = "os_glance_stage_host"
# Ours: what an image was before the import converted it (IMAGES_IMPORT_CONVERT_TO).
ORIGINAL_FORMAT = "os_glance_original_disk_format"
STORE_ID = "default"  # the one store; Glance's name for it without multi-store


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
        _transition(
            fresh,
            "stage",
            operation=Operation.STAGE,
            actor=actor,
            reason="stage started",
            now=timezone.now(),
        )
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
            on_progress=_Heartbeat(image.pk, Status.UPLOADING),
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
        fresh.upload_heartbeat_at = None  # staged: waiting for an import is no stall
        fresh.save(update_fields=["size", "upload_heartbeat_at", "updated_at"])
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
        events.task_event("task.create", task)
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
