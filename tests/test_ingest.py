"""images/ingest.py: whatever the pieces a stream arrives in, every byte is counted,
hashed in order and handed on once, through the reused ring of buffers."""

import hashlib
import io
import os
import random

import pytest

from images.errors import ImageTooLarge, InvalidInput, UploadInterrupted
from images.ingest import CHUNK_SIZE, RING, Ingest

SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, (RING + 3) * CHUNK_SIZE + 12345]


class Trickle:
    """A socket-like stream: `readinto` fills a few bytes to a few hundred KiB at a time."""

    def __init__(self, data: bytes, seed: int = 0):
        self.data, self.pos, self.rng = memoryview(data), 0, random.Random(seed)

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.rng.randint(1, 300_000), len(self.data) - self.pos)
        buffer[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def _through(stream, size=None, **kwargs):
    kwargs.setdefault("limit", 2**40)
    kwargs.setdefault("on_limit", lambda n: ImageTooLarge(f"too large: {n}"))
    ingest = Ingest(stream, declared_size=size, **kwargs)
    try:
        out = b"".join(bytes(view) for view in ingest.chunks())
        return ingest, out, ingest.digests()
    finally:
        ingest.close()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["readinto", "read"])
def test_ingest_hands_on_every_byte_once_and_hashes_it(size, kind):
    data = os.urandom(size)
    stream = Trickle(data, seed=size) if kind == "readinto" else io.BufferedReader(io.BytesIO(data))
    ingest, out, (md5, sha) = _through(stream, size)
    assert out == data
    assert ingest.size == size
    assert (md5, sha) == (hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest())


def test_ingest_fills_whole_chunks_but_the_last():
    data = os.urandom(3 * CHUNK_SIZE + 7)
    ingest = Ingest(Trickle(data), declared_size=None, limit=2**40, on_limit=ImageTooLarge)
    try:
        assert [len(view) for view in ingest.chunks()] == [CHUNK_SIZE] * 3 + [7]
    finally:
        ingest.close()


def test_ingest_refuses_more_than_declared():
    with pytest.raises(InvalidInput, match="Size exceeds: expected 10 bytes"):
        _through(Trickle(os.urandom(CHUNK_SIZE)), 10)


def test_ingest_refuses_less_than_declared():
    with pytest.raises(InvalidInput, match="Size mismatch: expected 20 bytes, got 10 bytes"):
        _through(Trickle(os.urandom(10)), 20)


def test_ingest_stops_at_the_limit():
    with pytest.raises(ImageTooLarge, match="too large"):
        _through(Trickle(os.urandom(3 * CHUNK_SIZE)), limit=CHUNK_SIZE)


def test_ingest_reports_a_stream_that_breaks():
    class Broken:
        def readinto(self, buffer):
            raise ConnectionResetError("peer gone")

    with pytest.raises(UploadInterrupted, match="stopped sending after 0 bytes: peer gone"):
        _through(Broken())
