"""The store: bytes in equal bytes out, hashes equal hashlib's, and a failed put
leaves nothing behind."""

import hashlib
import io
import os

import pytest

from images import storage
from images.errors import ImageTooLarge, InvalidInput, UploadInterrupted


def _put(data: bytes, **kwargs):
    kwargs.setdefault("declared_size", len(data))
    kwargs.setdefault("limit", 2**40)
    kwargs.setdefault("on_limit", lambda size: ImageTooLarge(f"too large: {size}"))
    return storage.put("img-1", io.BytesIO(data), **kwargs)


def test_put_stores_bytes_and_hashes(image_store, payload):
    stored = _put(payload)
    assert (image_store / "img-1").read_bytes() == payload
    assert stored.size == len(payload)
    assert stored.checksum == hashlib.md5(payload).hexdigest()
    assert stored.os_hash_algo == "sha512"
    assert stored.os_hash_value == hashlib.sha512(payload).hexdigest()
    assert sorted(os.listdir(image_store)) == ["img-1"]


def test_put_without_declared_size_accepts_any_length(image_store, payload):
    stored = _put(payload, declared_size=None)
    assert stored.size == len(payload)


def test_put_empty_stream_gives_empty_hashes(image_store):
    stored = _put(b"")
    assert stored.checksum == hashlib.md5(b"").hexdigest()
    assert (image_store / "img-1").read_bytes() == b""


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (10, "Size exceeds: expected 10 bytes"),
        (5_000_000, "Size mismatch: expected 5000000 bytes, got 3145851 bytes"),
    ],
)
def test_put_size_mismatch_leaves_nothing(image_store, payload, declared, message):
    with pytest.raises(InvalidInput, match=message):
        _put(payload, declared_size=declared)
    assert not image_store.exists() or os.listdir(image_store) == []


def test_put_over_limit_leaves_nothing(image_store, payload):
    with pytest.raises(ImageTooLarge, match="too large"):
        _put(payload, declared_size=None, limit=1024 * 1024)
    assert os.listdir(image_store) == []


class _DroppingStream(io.RawIOBase):
    """A client that sends some bytes and then disconnects."""

    def __init__(self, first: bytes):
        self.first = first

    def read(self, size=-1):
        if self.first:
            chunk, self.first = self.first, b""
            return chunk
        raise OSError("client disconnected")


def test_put_client_disconnect_leaves_nothing(image_store):
    with pytest.raises(UploadInterrupted, match="stopped sending after 1000 bytes"):
        storage.put(
            "img-1",
            _DroppingStream(b"x" * 1000),
            declared_size=None,
            limit=2**40,
            on_limit=ImageTooLarge,
        )
    assert os.listdir(image_store) == []


def test_put_failing_store_leaves_nothing(failing_store, image_store, payload):
    failing_store(fail_deletes=False)
    with pytest.raises(OSError, match="injected"):
        _put(payload)
    assert not image_store.exists() or os.listdir(image_store) == []


def test_put_object_store_path_stores_bytes(failing_store, image_store, payload):
    failing_store(fail_writes=False, fail_deletes=False)
    stored = _put(payload)
    assert (image_store / stored.name).read_bytes() == payload
    assert stored.os_hash_value == hashlib.sha512(payload).hexdigest()


def test_delete_missing_object_counts_as_deleted(image_store):
    storage.delete("never-existed")


@pytest.mark.parametrize(
    "size", [1, storage.CHUNK_SIZE - 1, storage.CHUNK_SIZE, 3 * storage.CHUNK_SIZE + 5]
)
def test_put_writes_whole_chunks_and_an_unaligned_tail(image_store, size):
    """Whole chunks go around the page cache (O_DIRECT), the tail through it: the file
    holds exactly the bytes sent."""
    data = os.urandom(size)
    _put(data)
    assert (image_store / "img-1").read_bytes() == data
