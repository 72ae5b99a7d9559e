"""The image-data store, over Django's ``STORAGES["images"]``.

Functions keyed by object name, looked up at call time so settings (and tests)
can swap the backend. Bytes stream through in fixed chunks and are never held
whole in memory; images/ingest.py reads, hashes and inspects them on the way.
"""

import contextlib
import errno
import fcntl
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from django.core.files import File
from django.core.files.storage import Storage, storages
from storages.utils import clean_name

from images.ingest import CHUNK_SIZE, HASH_ALGO, Ingest, Readable
from images.inspection import Inspection, Verdict
from images.rbd_store import RBDStorage


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


def partial_name(image_id, name: str | None = None) -> str:
    """Where an upload in progress writes, on stores that can rename."""
    return f"{name or object_name(image_id)}.partial"


def staged_name(image_id) -> str:
    """Data staged for an import (PUT /stage): in the store, so that a worker on any
    node can import it."""
    return f"{image_id}.staged"


def local_path(name: str) -> str | None:
    """The file's path when the store is a local filesystem (for rename and sendfile)."""
    try:
        return store().path(name)
    except NotImplementedError:
        return None


def location_url(name: str) -> str | None:
    """Where our bytes are, as Glance writes a store location: file:// on a filesystem,
    rbd://<fsid>/<pool>/<image>/snap on Ceph (what Nova parses to clone); None on an
    object store, whose locations are shown by object name."""
    backend = store()
    if isinstance(backend, RBDStorage):
        return backend.url(name)
    path = local_path(name)
    return f"file://{path}" if path else None


def clones_data() -> bool:
    """Whether others may build on our bytes inside the store (RBD clones)."""
    return isinstance(store(), RBDStorage)


def in_use(name: str) -> bool:
    """Whether the store holds the bytes for someone else too (clones of an RBD
    snapshot), so that removing them would break those: such data is not deleted."""
    return clones_data() and store().in_use(name)


class _IngestFile(File):
    """The ingest as a file, for Django storages that save a file (object stores)."""

    DEFAULT_CHUNK_SIZE = CHUNK_SIZE

    def __init__(self, ingest: Ingest, name: str):
        super().__init__(None, name=name)
        self._chunks = ingest.chunks()
        self._pending = b""

    # Django's storages ask these of the file they save; the stream can do neither.
    closed = False

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        # Object stores upload in parts of a fixed size (S3: at least 5 MiB but the
        # last), so a short read from the socket must not end a part early. The
        # ingest's views are reused, so what leaves here is a copy.
        if size is None or size < 0:
            return b"".join(self.chunks())  # what file.read() means; no caller of ours asks
        parts, got = [self._pending], len(self._pending)
        while got < size and (view := next(self._chunks, None)) is not None:
            parts.append(bytes(view))
            got += len(view)
        data = b"".join(parts)
        self._pending = data[size:]
        return data[:size]

    def chunks(self, chunk_size=None):
        while chunk := self.read(chunk_size or self.DEFAULT_CHUNK_SIZE):
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
    name: str | None = None,
) -> StoredData:
    """Store the stream as the image's data (or under `name`, e.g. staged data), or
    raise and leave nothing behind.

    With an `inspection`, every chunk is inspected as it is hashed; its refusal
    stops the upload there.

    On a local filesystem the bytes go to a ``.partial`` name that is renamed into
    place only when complete; an object store commits an object atomically itself.
    """
    ingest = Ingest(
        stream,
        declared_size=declared_size,
        limit=limit,
        on_limit=on_limit,
        on_progress=on_progress,
        inspection=inspection,
    )
    try:
        final = name or object_name(image_id)
        backend = store()
        if isinstance(backend, RBDStorage):
            # Written in place under its final name, as Glance's rbd store does: the
            # RBD image is whole (and cloneable) once its snapshot exists.
            backend.write(final, ingest.chunks(), declared_size=declared_size)
            return _stored(ingest, final)
        partial_path = local_path(partial_name(image_id, final))
        if partial_path is None:
            return _put_to_object_store(ingest, final)
        return _put_to_filesystem(ingest, final, partial_path)
    finally:
        ingest.close()


def _put_to_filesystem(ingest: Ingest, final: str, partial_path: str) -> StoredData:
    os.makedirs(os.path.dirname(partial_path), exist_ok=True)
    try:
        fd = _open_for_writing(partial_path)
        try:
            for view in ingest.chunks():
                if len(view) < CHUNK_SIZE:
                    _buffered(fd)  # the last chunk: its length is not block-aligned
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        stored = _stored(ingest, final)
        mode = getattr(store(), "file_permissions_mode", None)
        if mode is not None:
            os.chmod(partial_path, mode)
        os.replace(partial_path, local_path(final))
    except BaseException:
        _remove_file(partial_path)
        raise
    return stored


def _open_for_writing(path: str) -> int:
    """The file, opened to write around the page cache where the filesystem can.

    An image is written once and read later, if at all: through the page cache, its
    gigabytes would evict what is hot, and on this project's 2-core machines the
    cached write cost 2-4 CPU-seconds per GiB (more than the MD5) where O_DIRECT
    costs 0.3. The ingest fills whole page-aligned buffers, as O_DIRECT needs;
    filesystems without it (tmpfs) get an ordinary write.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    direct = getattr(os, "O_DIRECT", 0)
    if direct:
        try:
            return os.open(path, flags | direct, 0o666)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
    return os.open(path, flags, 0o666)


def _buffered(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    direct = getattr(os, "O_DIRECT", 0)
    if flags & direct:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~direct)


def _put_to_object_store(ingest: Ingest, final: str) -> StoredData:
    backend = store()
    saved_name = None
    try:
        saved_name = backend.save(final, _IngestFile(ingest, final))
        return _stored(ingest, saved_name)
    except BaseException:
        # A backend that failed mid-write may have left an object behind.
        with contextlib.suppress(Exception):
            backend.delete(saved_name or final)
        raise


def _stored(ingest: Ingest, name: str) -> StoredData:
    checksum, os_hash_value = ingest.digests()
    return StoredData(
        name=name,
        size=ingest.size,
        checksum=checksum,
        os_hash_algo=HASH_ALGO,
        os_hash_value=os_hash_value,
        verdict=ingest.verdict,
    )


def _remove_file(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def open_data(name: str, start: int = 0, length: int | None = None) -> BinaryIO:
    """The object's bytes from `start` on (`length` of them, or to the end), as a
    file to read. On disk, reading past `length` is the caller's to avoid.

    On disk it is the file itself (so the server can sendfile it); on S3 it is the
    GET response body, streamed: django-storages' own file would first copy the
    whole object into a temporary file. On RBD it reads the protected snapshot."""
    backend = store()
    if isinstance(backend, RBDStorage):
        return backend.open_range(name, start, length)
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
    """Remove an object; one that is already gone counts as removed. Data in use
    (RBD clones) raises rbd_store.StoreInUse and stays."""
    store().delete(name)


def delete_partial(image_id, name: str | None = None) -> None:
    """Remove whatever an interrupted upload of this image (to `name`) left behind."""
    path = local_path(partial_name(image_id, name))
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
