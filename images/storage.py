"""The image-data store, over Django's ``STORAGES["images"]``.

Functions keyed by object name, looked up at call time so settings (and tests)
can swap the backend. Bytes stream through in fixed chunks and are never held
whole in memory. MD5 (Glance's ``checksum``) and SHA-512 (``os_hash_value``) are
computed on two threads (one per hash, so each sees the chunks in order) while
the caller's thread reads and writes: hashlib releases the GIL on large buffers,
so an upload runs at the speed of the slower hash rather than the sum of both.
"""

import contextlib
import hashlib
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from django.core.files import File
from django.core.files.storage import Storage, storages
from storages.utils import clean_name

from images.errors import InvalidInput, UploadInterrupted
from images.inspection import Inspection, Verdict

CHUNK_SIZE = 1024 * 1024
# How many chunks the hash threads may lag behind the caller's reads and writes.
# With one (each chunk waited for before the next was handed over) any hiccup of
# either side stalled the other; on 2 cores, 256 MiB curl uploads went from a
# median 250 to 360 MiB/s with 8, and the server used less CPU per MiB. It costs
# at most this many MiB per upload (issue 6 allows 32 MiB per upload).
HASH_AHEAD = 8
HASH_ALGO = "sha512"


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class StoredData:
    name: str
    size: int
    checksum: str
    os_hash_algo: str
    os_hash_value: str
    verdict: Verdict | None = None  # what the bytes are, when they were inspected


def store() -> Storage:
    return storages["images"]


def object_name(image_id) -> str:
    return str(image_id)


def partial_name(image_id) -> str:
    """Where an upload in progress writes, on stores that can rename."""
    return f"{image_id}.partial"


def local_path(name: str) -> str | None:
    """The file's path when the store is a local filesystem (for rename and sendfile)."""
    try:
        return store().path(name)
    except NotImplementedError:
        return None


class _Ingest:
    """Reads the incoming stream in chunks, counting, bounding and hashing it."""

    def __init__(
        self,
        stream: Readable,
        *,
        declared_size: int | None,
        limit: int,
        on_limit: Callable[[int], Exception],
        on_progress: Callable[[int], None] | None,
        inspection: Inspection | None,
    ):
        self.stream = stream
        self.inspection = inspection
        self.verdict: Verdict | None = None
        self.declared_size = declared_size
        self.limit = limit
        self.on_limit = on_limit
        self.on_progress = on_progress
        self.size = 0
        self._md5 = hashlib.md5()
        self._sha = hashlib.new(HASH_ALGO)
        # One thread per hash, so each sees the chunks in order.
        self._md5_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-md5")
        self._sha_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image-sha")
        self._pending: deque[tuple[Future, Future]] = deque()

    def read(self, size: int = CHUNK_SIZE) -> bytes:
        try:
            chunk = self.stream.read(size if size and size > 0 else CHUNK_SIZE)
        except Exception as exc:
            # The server raises here when the client goes away mid-body.
            raise UploadInterrupted(
                f"The client stopped sending after {self.size} bytes: {exc}"
            ) from exc
        if not chunk:
            self._check_complete()
            return b""
        self.size += len(chunk)
        if self.declared_size is not None and self.size > self.declared_size:
            raise InvalidInput(
                f"Size exceeds: expected {self.declared_size} bytes, got {self.size} bytes"
            )
        if self.size > self.limit:
            raise self.on_limit(self.size)
        # The hash threads may lag HASH_AHEAD chunks behind: the caller writes this
        # chunk and reads the next ones while they hash.
        self._pending.append(
            (
                self._md5_pool.submit(self._md5.update, chunk),
                self._sha_pool.submit(self._sha.update, chunk),
            )
        )
        while len(self._pending) > HASH_AHEAD:
            for future in self._pending.popleft():
                future.result()
        if self.inspection is not None:
            # Raises as soon as the bytes are known to be refused: the rest of the
            # body is never read, let alone stored.
            self.inspection.feed(chunk)
        if self.on_progress is not None:
            self.on_progress(self.size)
        return chunk

    def _wait(self) -> None:
        while self._pending:
            for future in self._pending.popleft():
                future.result()

    def _check_complete(self) -> None:
        if self.declared_size is not None and self.size != self.declared_size:
            raise InvalidInput(
                f"Size mismatch: expected {self.declared_size} bytes, got {self.size} bytes"
            )
        if self.inspection is not None:
            # Before the data is committed: a verdict reached only at the end (a
            # VMDK footer, a tiny image) refuses it as surely as an early one.
            self.verdict = self.inspection.finish()

    def finish(self, name: str) -> StoredData:
        self._wait()
        return StoredData(
            name=name,
            size=self.size,
            checksum=self._md5.hexdigest(),
            os_hash_algo=HASH_ALGO,
            os_hash_value=self._sha.hexdigest(),
            verdict=self.verdict,
        )

    def close(self) -> None:
        self._md5_pool.shutdown(wait=True, cancel_futures=True)
        self._sha_pool.shutdown(wait=True, cancel_futures=True)


class _IngestFile(File):
    DEFAULT_CHUNK_SIZE = CHUNK_SIZE

    def __init__(self, ingest: _Ingest, name: str):
        super().__init__(ingest, name=name)

    # Django's storages ask these of the file they save; the stream can do neither.
    closed = False

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        # Object stores upload in parts of a fixed size (S3: at least 5 MiB but the
        # last), so a short read from the socket must not end a part early.
        if size is None or size < 0:
            return b"".join(self.chunks())  # what file.read() means; no caller of ours asks
        parts, got = [], 0
        while got < size and (chunk := self.file.read(size - got)):
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def chunks(self, chunk_size=None):
        while chunk := self.file.read(chunk_size or self.DEFAULT_CHUNK_SIZE):
            yield chunk


def put(
    image_id,
    stream: Readable,
    *,
    declared_size: int | None,
    limit: int,
    on_limit: Callable[[int], Exception],
    on_progress: Callable[[int], None] | None = None,
    inspection: Inspection | None = None,
) -> StoredData:
    """Store the stream as the image's data, or raise and leave nothing behind.

    With an `inspection`, every chunk is inspected as it is hashed; its refusal
    stops the upload there.

    On a local filesystem the bytes go to a ``.partial`` name that is renamed into
    place only when complete; an object store commits an object atomically itself.
    """
    ingest = _Ingest(
        stream,
        declared_size=declared_size,
        limit=limit,
        on_limit=on_limit,
        on_progress=on_progress,
        inspection=inspection,
    )
    try:
        final = object_name(image_id)
        partial_path = local_path(partial_name(image_id))
        if partial_path is None:
            return _put_to_object_store(ingest, final)
        return _put_to_filesystem(ingest, final, partial_path)
    finally:
        ingest.close()


def _put_to_filesystem(ingest: _Ingest, final: str, partial_path: str) -> StoredData:
    os.makedirs(os.path.dirname(partial_path), exist_ok=True)
    try:
        with open(partial_path, "wb") as out:
            while chunk := ingest.read(CHUNK_SIZE):
                out.write(chunk)
        stored = ingest.finish(final)
        mode = getattr(store(), "file_permissions_mode", None)
        if mode is not None:
            os.chmod(partial_path, mode)
        os.replace(partial_path, local_path(final))
    except BaseException:
        _remove_file(partial_path)
        raise
    return stored


def _put_to_object_store(ingest: _Ingest, final: str) -> StoredData:
    backend = store()
    saved_name = None
    try:
        saved_name = backend.save(final, _IngestFile(ingest, final))
        return ingest.finish(saved_name)
    except BaseException:
        # A backend that failed mid-write may have left an object behind.
        with contextlib.suppress(Exception):
            backend.delete(saved_name or final)
        raise


def _remove_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def open_data(name: str, start: int = 0, length: int | None = None) -> BinaryIO:
    """The object's bytes from `start` on (`length` of them, or to the end), as a
    file to read. On disk, reading past `length` is the caller's to avoid.

    On disk it is the file itself (so the server can sendfile it); on S3 it is the
    GET response body, streamed: django-storages' own file would first copy the
    whole object into a temporary file."""
    backend = store()
    bucket = getattr(backend, "bucket", None)
    if bucket is None:
        data = backend.open(name, "rb")
        if start:
            data.seek(start)
        return data
    key = backend._normalize_name(clean_name(name))
    end = "" if length is None else start + length - 1
    ranged = {"Range": f"bytes={start}-{end}"} if start or length is not None else {}
    return bucket.Object(key).get(**ranged)["Body"]


def delete(name: str) -> None:
    """Remove an object; one that is already gone counts as removed."""
    store().delete(name)


def delete_partial(image_id) -> None:
    """Remove whatever an interrupted upload of this image left behind."""
    path = local_path(partial_name(image_id))
    if path is not None:
        _remove_file(path)


def list_names() -> list[str]:
    """Every object name in the store (top level: the store keeps no folders)."""
    backend = store()
    try:
        _, files = backend.listdir("")
    except FileNotFoundError:
        return []
    return sorted(files)


def hash_object(name: str) -> tuple[str, str]:
    """The stored object's md5 and sha512, read back in chunks."""
    md5, sha = hashlib.md5(), hashlib.new(HASH_ALGO)
    with open_data(name) as data:
        while chunk := data.read(CHUNK_SIZE):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()
