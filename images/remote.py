"""Bytes from somewhere else: the URLs web-download imports from and external
locations point at, opened only where the operator allows.

Contract (the import worker and the locations code rely on it):

- `check_url(url)` raises `RemoteRefused` (a 400 InvalidInput) for a URL the
  operator's rules refuse: scheme, port, host allow/deny lists, and a host that
  resolves to a private, loopback, link-local or otherwise non-public address unless
  it is listed in IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS.
- `open_remote(url)` is a context manager yielding a `RemoteStream`: `size` (the
  declared Content-Length, or None) and `readinto(buffer) -> int` (0 at the end),
  what `images.ingest.Ingest` reads from. Every redirect is checked again before it
  is followed; a refusal or an HTTP error raises `RemoteRefused` or `RemoteError`.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from images.errors import InvalidInput, StoreError


class RemoteRefused(InvalidInput):
    """The URL is not one this registry may fetch."""


class RemoteError(StoreError):
    """The remote end failed: unreachable, an HTTP error, a broken transfer."""


class RemoteStream(Protocol):
    size: int | None

    def readinto(self, buffer) -> int: ...


def check_url(url: str) -> None:
    raise NotImplementedError


@contextmanager
def open_remote(url: str) -> Iterator[RemoteStream]:
    raise NotImplementedError
    yield
