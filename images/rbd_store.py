"""Image data as Ceph RBD images, with Glance's rbd-store semantics, so that Nova and
Cinder find what they expect and clone instead of copying.

One RBD image per registry image, named by the name the store is given (the image's
id), written as the upload streams in (grown in doubling steps when the size is not
declared, never buffered whole), then a snapshot `snap` is created and protected:
clones are made from it, and reads come from it. Removal unprotects and removes the
snapshot, then the image; a snapshot with clones attached cannot be unprotected, and
that is `StoreInUse` (Glance's InUseByStore), not a loss.

A Django `Storage`, so `STORAGES["images"]` stays the one switch (settings turn it on
with IMAGES_RBD_POOL); images/storage.py asks it for what a Storage has no words for
(streamed writes, ranged reads, clones, the rbd:// URL). Ceph's own bindings,
python3-rados and python3-rbd from Debian, imported when the store is first used.
"""

import errno
import logging
import os
import threading
from collections.abc import Iterable

from django.core.files.storage import Storage

from images.errors import StoreError

logger = logging.getLogger(__name__)

SNAPSHOT = "snap"  # Glance's DEFAULT_SNAPNAME: what Nova and Cinder clone from
ORDER = 23  # 8 MiB RADOS objects, as Glance's rbd_store_chunk_size default
FIRST_STEP = 8 * 2**20  # an upload of unknown size grows by this, doubled each time,
MAX_STEP = 8 * 2**30  # up to this (Glance's resize-on-write)


class StoreInUse(StoreError):
    """The data cannot be removed: clones of its snapshot are attached (a Nova disk, a
    Cinder volume). Glance's InUseByStore, whose message this is."""

    def __init__(self, name: str):
        super().__init__(
            "The image cannot be deleted because it is in use through the backend store "
            f"outside of Glance (RBD image {name} has clones)."
        )


class RBDStorage(Storage):
    def __init__(
        self,
        pool: str,
        conffile: str = "/etc/ceph/ceph.conf",
        user: str = "admin",
        keyring: str | None = None,
        connect_timeout: int = 10,
        op_timeout: int = 60,
    ):
        self.pool = pool
        self.conffile = conffile
        self.user = user
        self.keyring = keyring
        self.connect_timeout = connect_timeout
        self.op_timeout = op_timeout
        self._lock = threading.Lock()
        self._pid = None
        self._cluster = None
        self._ioctx = None

    # --- the connection: one per process, made on first use ---------------------------

    def ioctx(self):
        """This process's I/O context on the pool. librados is thread-safe, so the
        threads of a worker share it; a forked child (gunicorn's workers) makes its own,
        since a connection does not survive a fork."""
        if self._pid == os.getpid():
            return self._ioctx
        with self._lock:
            if self._pid != os.getpid():
                self._connect()
        return self._ioctx

    def _connect(self) -> None:
        try:
            import rados
        except ImportError:  # Debian's python3-rados, linked into .venv by make ceph-bindings
            raise StoreError(
                "The Ceph client modules are not installed (python3-rados, python3-rbd; "
                "make ceph-bindings)"
            ) from None

        conf = {"keyring": self.keyring} if self.keyring else {}
        # A cluster that stops answering fails the request instead of hanging it.
        timeout = str(self.op_timeout)
        conf.update(rados_osd_op_timeout=timeout, rados_mon_op_timeout=timeout)
        try:
            cluster = rados.Rados(conffile=self.conffile, rados_id=self.user, conf=conf)
        except rados.Error as exc:  # a missing or unreadable ceph.conf
            raise StoreError(f"Cannot read the Ceph configuration {self.conffile}: {exc}") from exc
        try:
            cluster.connect(timeout=self.connect_timeout)
            ioctx = cluster.open_ioctx(self.pool)
        except rados.Error as exc:
            cluster.shutdown()
            raise StoreError(f"Cannot reach the Ceph pool {self.pool}: {exc}") from exc
        self._cluster, self._ioctx, self._pid = cluster, ioctx, os.getpid()

    def fsid(self) -> str:
        self.ioctx()
        return self._cluster.get_fsid()

    def url(self, name: str) -> str:
        """The location Glance gives an RBD image, which Nova parses to clone it."""
        return f"rbd://{self.fsid()}/{self.pool}/{name}/{SNAPSHOT}"

    # --- writing ----------------------------------------------------------------------

    def write(self, name: str, chunks: Iterable, *, declared_size: int | None) -> None:
        """Create the RBD image `name` and write the chunks into it as they come, then
        snapshot and protect it. On any failure the RBD image is removed."""
        import rbd

        ioctx = self.ioctx()
        try:
            rbd.RBD().create(
                ioctx,
                name,
                declared_size or 0,
                order=ORDER,
                old_format=False,
                features=rbd.RBD_FEATURE_LAYERING,
            )
        except rbd.ImageExists:
            raise StoreError(f"RBD image {name} already exists in pool {self.pool}.") from None
        except rbd.Error as exc:
            raise _as_os_error(exc) from exc
        try:
            with rbd.Image(ioctx, name) as image:
                writes = _Writes(image)
                try:
                    size = declared_size or 0
                    step, offset = FIRST_STEP, 0
                    for chunk in chunks:
                        if offset + len(chunk) > size:  # only when the size was not declared
                            writes.wait()
                            size = max(size + step, offset + len(chunk))
                            image.resize(size)
                            step = min(step * 2, MAX_STEP)
                        writes.write(chunk, offset)
                        offset += len(chunk)
                finally:
                    writes.wait()
                if size != offset:
                    image.resize(offset)
                image.create_snap(SNAPSHOT)
                image.protect_snap(SNAPSHOT)
        except BaseException as exc:
            try:
                self.delete(name)
            except Exception:
                logger.exception("Could not remove the unfinished RBD image %s", name)
            if isinstance(exc, rbd.Error):
                raise _as_os_error(exc) from exc
            raise

    def _save(self, name, content):
        raise NotImplementedError("images/storage.py writes RBD images with write()")

    # --- reading ----------------------------------------------------------------------

    def open_range(
        self,
        name: str,
        start: int = 0,
        length: int | None = None,
        *,
        snapshot: str | None = SNAPSHOT,
    ) -> "RBDReader":
        return read_snapshot(self.ioctx(), name, snapshot, start, length)

    def _open(self, name, mode="rb"):
        return self.open_range(name)

    def exists(self, name: str) -> bool:
        import rbd

        try:
            rbd.Image(self.ioctx(), name, read_only=True).close()
        except rbd.ImageNotFound:
            return False
        return True

    def size(self, name: str) -> int:
        with self.open_range(name) as reader:
            return reader.image.size()

    def listdir(self, path: str):
        import rbd

        return [], list(rbd.RBD().list(self.ioctx()))

    def in_use(self, name: str) -> bool:
        """Whether clones hang off the image's snapshot (Nova's disks, Cinder's volumes)."""
        import rbd

        try:
            with rbd.Image(self.ioctx(), name, snapshot=SNAPSHOT, read_only=True) as image:
                return any(True for _ in image.list_children2())
        except rbd.ImageNotFound:
            return False

    def close(self) -> None:
        """Drop this process's connection (a short-lived store: import_glance's view
        of Glance's pool); the next use connects again."""
        with self._lock:
            if self._pid == os.getpid():
                self._ioctx.close()
                self._cluster.shutdown()
            self._pid = self._cluster = self._ioctx = None

    # --- removing ---------------------------------------------------------------------

    def delete(self, name: str) -> None:
        """Unprotect and remove the snapshot, then the image (Glance's _delete_image).
        One that is already gone counts as removed; one with clones is StoreInUse and
        is left whole."""
        import rbd

        ioctx = self.ioctx()
        try:
            with rbd.Image(ioctx, name) as image:
                if any(snap["name"] == SNAPSHOT for snap in image.list_snaps()):
                    try:
                        if image.is_protected_snap(SNAPSHOT):
                            image.unprotect_snap(SNAPSHOT)
                    except rbd.ImageBusy:
                        raise StoreInUse(name) from None
                    image.remove_snap(SNAPSHOT)
            rbd.RBD().remove(ioctx, name)
        except rbd.ImageNotFound:
            return
        except rbd.ImageBusy:
            # Open elsewhere (a watcher: a mapped or running disk): not ours to break.
            raise StoreInUse(name) from None


def read_snapshot(
    ioctx, name: str, snapshot: str | None = SNAPSHOT, start: int = 0, length: int | None = None
) -> "RBDReader":
    """RBD image `name`'s snapshot (None: the image itself), opened read-only, as a
    file to read: our downloads, and import_glance's copy out of Glance's pool."""
    import rbd

    try:
        image = rbd.Image(ioctx, name, snapshot=snapshot, read_only=True)
    except rbd.ImageNotFound:
        at = f"@{snapshot}" if snapshot else ""
        raise FileNotFoundError(errno.ENOENT, f"RBD image {name}{at} not found") from None
    except rbd.Error as exc:
        raise _as_os_error(exc) from exc
    return RBDReader(image, start, length)


def _as_os_error(exc: Exception) -> OSError:
    """A Ceph error as an OSError, so that a full cluster is "storage full" (413) as a
    full disk is, and a timeout is a store failure that names its cause (503)."""
    return OSError(getattr(exc, "errno", None) or errno.EIO, f"RBD: {exc}")


class _Writes:
    """Writes to an RBD image that overlap with reading the next chunk from the
    client: up to DEPTH in flight (librbd's aio), each a copy of its chunk, since the
    ingest reuses its buffers (and the binding takes bytes only)."""

    DEPTH = 4

    def __init__(self, image):
        self.image = image
        self._slots = threading.BoundedSemaphore(self.DEPTH)
        self._failed: list[int] = []

    def _done(self, completion) -> None:
        result = completion.get_return_value()
        if result < 0:
            self._failed.append(result)
        self._slots.release()

    def write(self, chunk, offset: int) -> None:
        self._check()
        self._slots.acquire()
        try:
            self.image.aio_write(bytes(chunk), offset, self._done)
        except BaseException:
            self._slots.release()
            raise

    def wait(self) -> None:
        """Until every write has landed; raises if one failed."""
        for _ in range(self.DEPTH):
            self._slots.acquire()
        for _ in range(self.DEPTH):
            self._slots.release()
        self._check()

    def _check(self) -> None:
        if self._failed:
            code = -self._failed[0]
            raise OSError(code, f"Writing to RBD failed: {os.strerror(code)}")


class RBDReader:
    """An RBD snapshot's bytes from `start` on (`length` of them, or to the end), read
    as a file: what a download, a rehash and the import worker read.

    Read in whole 8 MiB pieces (one RADOS object each), the next one asked for
    (librbd aio) while the current one is served: 1 MiB synchronous reads left Ceph
    idle between them, at about 0.4 x what the cluster gives one reader."""

    PIECE = 2**ORDER

    def __init__(self, image, start: int, length: int | None):
        self.image = image
        end = image.size()
        self._end = end if length is None else min(end, start + length)
        self._fetch_at = start
        self._piece, self._used = b"", 0
        self._pending = self._fetch()

    def _fetch(self):
        """Ask for the next piece; returns (landed event, result holder) or None at
        the end."""
        if self._fetch_at >= self._end:
            return None
        length = min(self.PIECE, self._end - self._fetch_at)
        landed, result = threading.Event(), {}

        def done(completion, data) -> None:
            result["code"], result["data"] = completion.get_return_value(), data
            landed.set()

        self.image.aio_read(self._fetch_at, length, done)
        self._fetch_at += length
        return landed, result

    def _next_piece(self) -> bytes:
        if self._pending is None:
            return b""
        landed, result = self._pending
        landed.wait()
        self._pending = self._fetch()
        if result["code"] < 0:
            code = -result["code"]
            raise OSError(code, f"Reading from RBD failed: {os.strerror(code)}")
        return result["data"]

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._piece[self._used :]]
            while piece := self._next_piece():
                parts.append(piece)
            self._piece, self._used = b"", 0
            return b"".join(parts)
        if self._used >= len(self._piece):
            self._piece, self._used = self._next_piece(), 0
        data = self._piece[self._used : self._used + size]
        self._used += len(data)
        return data

    def close(self) -> None:
        if self._pending is not None:  # librbd must not call back into a closed image
            self._pending[0].wait()
            self._pending = None
        self.image.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
