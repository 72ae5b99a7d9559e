"""An image's bytes: upload (queued → saving → active, or back to queued on any
failure) and download. The bytes move outside any transaction; only the status
changes on either side of them hold a row lock.
"""

import contextlib
import errno
import logging
import time
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from images import events, policy, remote, selectors, storage
from images.enums import LocationStatus, Operation, Status
from images.errors import (
    Forbidden,
    ImageError,
    ImageGone,
    ImageNotFound,
    ImageTooLarge,
    StoreError,
)
from images.inspection import Inspection
from images.models import Image, ImageLocation
from images.policy import Action, Actor
from images.services._transitions import _lock, _transition
from images.services.deprecation import check_not_obsolete

# The package's logger, as before the split, so log lines keep saying images.services.
logger = logging.getLogger(__package__)


def _upload_limit(owner: str | None) -> tuple[int, str]:
    """The most bytes this upload may bring, and what bounds it."""
    cap = settings.IMAGES_SIZE_CAP
    quota = settings.IMAGES_USER_STORAGE_QUOTA
    if quota:
        remaining = max(quota - selectors.owner_storage_used(owner), 0)
        if remaining < cap:
            return remaining, "quota"
    return cap, "cap"


def _too_large(kind: str, limit: int):
    def error(size: int) -> ImageError:
        if kind == "quota":
            return ImageTooLarge(
                f"Image exceeds the storage quota: The size of the data {size} will exceed "
                f"the limit. {limit} bytes remaining."
            )
        return ImageTooLarge(f"The incoming image is too large: the size cap is {limit} bytes.")

    return error


class _Heartbeat:
    """Tells the janitor the upload is alive, and notices if the image went away."""

    def __init__(self, image_id, while_status: str = Status.SAVING):
        self.image_id = image_id
        self.while_status = while_status  # `uploading` while data is staged for an import
        self.interval = min(10.0, settings.IMAGES_UPLOAD_STALE_SECONDS / 4)
        self.last = time.monotonic()

    def __call__(self, received: int) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        alive = Image.objects.filter(pk=self.image_id, status=self.while_status).update(
            upload_heartbeat_at=timezone.now()
        )
        if not alive:
            raise ImageGone(
                f"Image {self.image_id} could not be found after upload. "
                "The image may have been deleted during the upload."
            )


def _store_error(exc: BaseException) -> ImageError:
    if isinstance(exc, ImageError):
        return exc
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ImageTooLarge("Image storage media is full: there is no space left for this image.")
    return StoreError(f"The image store failed while writing the data: {exc}")


def image_upload(
    *, image: Image, actor: Actor, stream: storage.Readable, declared_size: int | None = None
) -> Image:
    """Stream data into a queued image: queued → saving → active.

    Any failure takes the single failure path: the partial data is removed, the
    image goes back to `queued` (the client may retry) and the history says why.
    """
    if not policy.may(actor, image, Action.UPLOAD):
        raise Forbidden(f"You are not permitted to upload data to image {image.id}.")
    limit, kind = _upload_limit(image.owner)
    if declared_size is not None and declared_size > limit:
        raise _too_large(kind, limit)(declared_size)
    with transaction.atomic():
        _transition(
            _lock(image.pk),
            "begin_upload",
            operation=Operation.UPLOAD,
            actor=actor,
            reason="upload started",
            now=timezone.now(),
        )
    try:
        stored = storage.put(
            image.pk,
            stream,
            declared_size=declared_size,
            limit=limit,
            on_limit=_too_large(kind, limit),
            on_progress=_Heartbeat(image.pk),
            inspection=Inspection(image.disk_format, image.container_format),
        )
    except BaseException as exc:
        error = _store_error(exc)
        _abort_upload(image.pk, actor, reason=error.message)
        if error is exc:
            raise
        raise error from exc
    try:
        with transaction.atomic():
            fresh = _lock(image.pk)
            if fresh.status != Status.SAVING:
                raise ImageGone(
                    f"Image {image.pk} could not be found after upload. "
                    "The image may have been deleted during the upload."
                )
            _transition(
                fresh,
                "finish_upload",
                operation=Operation.UPLOAD,
                actor=actor,
                reason=_stored_reason(stored),
                size=stored.size,
                checksum=stored.checksum,
                os_hash_algo=stored.os_hash_algo,
                os_hash_value=stored.os_hash_value,
                virtual_size=stored.verdict.virtual_size if stored.verdict else None,
                data_format=stored.verdict.detected if stored.verdict else "",
            )
            ImageLocation.objects.create(image=fresh, url=stored.name, in_store=True)
    except BaseException as exc:
        # The bytes are ours and no record points at them: never leave them behind.
        _discard(stored.name)
        if not isinstance(exc, ImageGone):
            _abort_upload(image.pk, actor, reason=f"recording the upload failed: {exc}")
        raise
    return fresh


def _stored_reason(stored: storage.StoredData) -> str:
    reason = f"{stored.size} bytes stored"
    if stored.verdict is not None:
        reason += f", content {stored.verdict.detected}"
        if stored.verdict.virtual_size is not None:
            reason += f", virtual size {stored.verdict.virtual_size}"
    return reason


def _abort_upload(image_id, actor: Actor, *, reason: str) -> None:
    storage.delete_partial(image_id)
    with transaction.atomic():
        try:
            image = _lock(image_id)
        except ImageNotFound:
            return
        if image.status == Status.SAVING:
            events.upload_failed(image, reason)
            _transition(
                image, "abort_upload", operation=Operation.UPLOAD_FAILED, actor=actor, reason=reason
            )


def _discard(name: str) -> None:
    try:
        storage.delete(name)
    except Exception:
        logger.exception("Could not remove unrecorded image data %s (verify_store finds it)", name)


class _Sent:
    """A file being sent to a client, counting the bytes read from it; closed, it
    reports them as image.send (Glance counts the chunks it yields). Handed to
    sendfile(2) instead (fileno asked for), the server sends all `length` bytes or
    fails the response, and `length` is reported."""

    def __init__(self, file, image: Image, actor: Actor | None, length: int):
        self._file = file
        self._image = image
        self._actor = actor
        self._length = length
        self._count = 0
        self._sendfile = False
        self._reported = False

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._count += len(chunk)
        return chunk

    def readinto(self, buffer) -> int:
        received = self._file.readinto(buffer)
        self._count += received or 0
        return received

    def __getattr__(self, name: str):
        found = getattr(self._file, name)
        if name != "fileno":
            return found

        def fileno() -> int:  # called by the server that sendfiles it, not by hasattr
            self._sendfile = True
            return found()

        return fileno

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self.report()

    def __enter__(self) -> "_Sent":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def report(self) -> None:
        if self._reported or self._actor is None:
            return
        self._reported = True
        sent = self._length if self._sendfile and not self._count else self._count
        events.image_sent(self._image, self._actor, bytes_sent=sent, expected=self._length)


@dataclass(frozen=True)
class ImageData:
    """What a download needs: the bytes (if any), their size and MD5; `actor` is
    who receives them (image.send)."""

    image: Image
    size: int
    checksum: str | None
    store_name: str | None = None
    external_url: str | None = None
    actor: Actor | None = None

    @property
    def empty(self) -> bool:
        return self.store_name is None and self.external_url is None

    def open(self, start: int = 0, length: int | None = None) -> BinaryIO:
        file = storage.open_data(self.store_name, start, length)
        if not events.wanted("image.send"):
            return file  # nothing to count for: no wrapper on every read of a download
        expected = self.size - start if length is None else length
        return _Sent(file, self.image, self.actor, expected)  # type: ignore[return-value]

    def local_path(self) -> str | None:
        return storage.local_path(self.store_name) if self.store_name else None

    @contextlib.contextmanager
    def open_external(self):
        """The bytes at the external location, as `images.remote.open_remote` yields them."""
        with remote.open_remote(self.external_url) as stream:
            sent = _Sent(stream, self.image, self.actor, stream.size or self.size)
            try:
                yield sent
            finally:
                sent.report()


def image_download(*, image: Image, actor: Actor) -> ImageData | None:
    """The image's data, or None when it has none (Glance answers 204)."""
    if not policy.may(actor, image, Action.DOWNLOAD):
        if image.status == Status.DEACTIVATED:
            raise Forbidden(
                "The requested image has been deactivated. Image data download is forbidden."
            )
        raise Forbidden(f"You are not permitted to download image {image.pk}.")
    if image.status not in (Status.ACTIVE, Status.DEACTIVATED):
        return None
    check_not_obsolete(image, actor)
    location = image.locations.filter(status=LocationStatus.ACTIVE).first()
    if location is None:
        if image.size == 0:
            return ImageData(image=image, size=0, checksum=image.checksum)
        raise StoreError(f"Image {image.id} is {image.status} but has no data location.")
    if not location.in_store:
        return ImageData(
            image=image,
            size=image.size or 0,
            checksum=image.checksum,
            external_url=location.url,
            actor=actor,
        )
    if not storage.store().exists(location.url):
        raise StoreError(f"The data of image {image.id} is missing from the store.")
    return ImageData(
        image=image,
        size=image.size or 0,
        checksum=image.checksum,
        store_name=location.url,
        actor=actor,
    )
