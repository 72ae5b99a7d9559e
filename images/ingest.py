"""The upload's ingest loop: read the incoming bytes, count and bound them, hash them
(MD5, Glance's `checksum`, and SHA-512, `os_hash_value`), inspect their format, and
hand them to the store, never holding the image whole.

It is built for the CPU it costs, which on a small machine is the upload rate:

- the bytes land in a ring of preallocated, page-aligned buffers (`readinto`), so no
  chunk is a new allocation: fresh 1 MiB buffers are fresh pages, which the kernel
  faults in and zeroes, and that cost as much as the MD5. Each buffer is filled
  whole, so the store can write it with O_DIRECT (storage.py);
- each hash runs on a thread of its own, fed views of the ring (hashlib releases the
  GIL on large buffers), while the caller's thread reads and writes: an upload runs
  at the speed of the slower hash, not the sum of both. A buffer is reused once both
  hashes are done with it; they may lag RING - 1 chunks behind;
- plain threads and queues instead of futures: two queue operations per hash per
  MiB, nothing else.
"""

import contextlib
import hashlib
import io
import mmap
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from images.errors import ImageError, InvalidInput, UploadInterrupted
from images.inspection import Inspection, Verdict

CHUNK_SIZE = 1024 * 1024
# Buffers in the ring: what the hashes may lag behind the reads and writes, plus the
# one being read. 10 MiB per upload (the budget is 32 MiB).
RING = 10
HASH_ALGO = "sha512"


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _HashThread:
    """One hash on its own thread, fed views in order; `done` says which finished."""

    def __init__(self, name: str, digest):
        self.digest = digest
        self.todo: queue.SimpleQueue = queue.SimpleQueue()
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        update = self.digest.update
        while (view := self.todo.get()) is not None:
            try:
                update(view)
            except BaseException as exc:  # reported to the reader, which stops
                self.error = exc
            self.done.put(True)

    def stop(self) -> None:
        self.todo.put(None)
        self.thread.join()


def _own_readinto(stream) -> Callable | None:
    """The stream's `readinto`, unless it is io.RawIOBase's, which only says it is
    not implemented (a raw stream may define just `read`)."""
    readinto = getattr(stream, "readinto", None)
    if readinto is None or getattr(type(stream), "readinto", None) is io.RawIOBase.readinto:
        return None
    return readinto


class Ingest:
    """Reads a stream into the ring, counting, bounding, hashing and inspecting it."""

    def __init__(
        self,
        stream: Readable,
        *,
        declared_size: int | None,
        limit: int,
        on_limit: Callable[[int], Exception],
        on_progress: Callable[[int], None] | None = None,
        inspection: Inspection | None = None,
    ):
        self.stream = stream
        self._readinto = _own_readinto(stream)
        self.declared_size = declared_size
        self.limit = limit
        self.on_limit = on_limit
        self.on_progress = on_progress
        self.inspection = inspection
        self.verdict: Verdict | None = None
        self.size = 0
        # Anonymous maps: page-aligned, as O_DIRECT writes need.
        self._ring = [mmap.mmap(-1, CHUNK_SIZE) for _ in range(RING)]
        self._next = 0
        self._in_flight = 0
        self._md5 = _HashThread("image-md5", hashlib.md5())
        self._sha = _HashThread("image-sha", hashlib.new(HASH_ALGO))

    def chunks(self) -> Iterator[memoryview]:
        """The incoming bytes, chunk by chunk. A view is valid until the next one is
        asked for: write it (or copy it) before that."""
        while (view := self._fill()) is not None:
            yield view

    def _fill(self) -> memoryview | None:
        if self._in_flight == RING - 1:
            self._wait_one()  # the oldest buffer's hashes, so it can be refilled
        buffer = self._ring[self._next]
        got = self._read_into(buffer)
        if not got:
            self._check_complete()
            return None
        self.size += got
        if self.declared_size is not None and self.size > self.declared_size:
            raise InvalidInput(
                f"Size exceeds: expected {self.declared_size} bytes, got {self.size} bytes"
            )
        if self.size > self.limit:
            raise self.on_limit(self.size)
        view = memoryview(buffer)[:got]  # released with the ring, in close()
        self._md5.todo.put(view)
        self._sha.todo.put(view)
        self._in_flight += 1
        self._next = (self._next + 1) % RING
        if self.inspection is not None:
            # Raises as soon as the bytes are known to be refused: the rest of the
            # body is never read, let alone stored.
            self.inspection.feed(view)
        if self.on_progress is not None:
            self.on_progress(self.size)
        return view

    def _read_into(self, buffer: mmap.mmap) -> int:
        """Fill the buffer whole, short only at the end of the stream."""
        view = memoryview(buffer)
        got = 0
        try:
            while got < CHUNK_SIZE:
                if self._readinto is not None:
                    n = self._readinto(view[got:]) or 0
                else:
                    chunk = self.stream.read(CHUNK_SIZE - got)
                    n = len(chunk)
                    view[got : got + n] = chunk
                if not n:
                    break
                got += n
        except ImageError:
            raise  # the source's own account (a web-download's broken transfer)
        except Exception as exc:
            # The server raises here when the client goes away mid-body.
            raise UploadInterrupted(
                f"The client stopped sending after {self.size + got} bytes: {exc}"
            ) from exc
        finally:
            view.release()
        return got

    def _wait_one(self) -> None:
        for hasher in (self._md5, self._sha):
            hasher.done.get()
            if hasher.error is not None:
                raise hasher.error
        self._in_flight -= 1

    def _check_complete(self) -> None:
        if self.declared_size is not None and self.size != self.declared_size:
            raise InvalidInput(
                f"Size mismatch: expected {self.declared_size} bytes, got {self.size} bytes"
            )
        if self.inspection is not None:
            # Before the data is committed: a verdict reached only at the end (a
            # VMDK footer, a tiny image) refuses it as surely as an early one.
            self.verdict = self.inspection.finish(self.size)

    def digests(self) -> tuple[str, str]:
        """MD5 and SHA-512 of everything read, once every chunk was read."""
        while self._in_flight:
            self._wait_one()
        return self._md5.digest.hexdigest(), self._sha.digest.hexdigest()

    def close(self) -> None:
        for hasher in (self._md5, self._sha):
            hasher.stop()
        for buffer in self._ring:
            with contextlib.suppress(BufferError):  # a caller may still hold a view
                buffer.close()
