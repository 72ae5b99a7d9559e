"""A storage backend that fails like a broken disk: used to inject store failures.

The registry cannot tell it is a local filesystem (it has no `path()`), so
uploads go through Django's `Storage.save`, the object-store path. With
`fail_writes` the write dies after the first chunk; with `fail_deletes` every
delete fails; with `delete_delay` every delete first sleeps that many seconds
(a slow object store, so a test can kill the scrubber mid-run).

Options not given in STORAGES come from the environment, so a server or command
started as a subprocess can be pointed at it with environment variables alone:

    IMAGES_STORAGE_BACKEND=tests.failing_storage.FailingStorage
    FAILING_STORAGE=writes,deletes      # which operations fail (default: both; "" = none)
    FAILING_STORAGE_DELETE_DELAY=0.3    # seconds (default 0)
"""

import contextlib
import errno
import os
import time

from django.core.files.storage import FileSystemStorage


def _injected() -> OSError:
    return OSError(errno.EIO, "Input/output error (injected)")


def _faults_from_env() -> set[str]:
    raw = os.environ.get("FAILING_STORAGE", "writes,deletes")
    return {part.strip() for part in raw.split(",") if part.strip()}


class FailingStorage(FileSystemStorage):
    def __init__(self, *, fail_writes=None, fail_deletes=None, delete_delay=None, **kwargs):
        super().__init__(**kwargs)
        faults = _faults_from_env()
        self.fail_writes = "writes" in faults if fail_writes is None else fail_writes
        self.fail_deletes = "deletes" in faults if fail_deletes is None else fail_deletes
        if delete_delay is None:
            delete_delay = float(os.environ.get("FAILING_STORAGE_DELETE_DELAY", "0"))
        self.delete_delay = delete_delay

    def path(self, name):
        raise NotImplementedError("not a local filesystem")

    def _real_path(self, name):
        return super().path(name)

    def _save(self, name, content):
        full = self._real_path(name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as out:
            for chunk in content.chunks():
                out.write(chunk)
                if self.fail_writes:
                    raise _injected()
        return name

    def exists(self, name):
        return os.path.exists(self._real_path(name))

    def open(self, name, mode="rb"):
        return open(self._real_path(name), mode)

    def listdir(self, path):
        root = self._real_path(path)
        entries = list(os.scandir(root))
        return (
            sorted(entry.name for entry in entries if entry.is_dir()),
            sorted(entry.name for entry in entries if entry.is_file()),
        )

    def delete(self, name):
        if self.delete_delay:
            time.sleep(self.delete_delay)
        if self.fail_deletes:
            raise _injected()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._real_path(name))
