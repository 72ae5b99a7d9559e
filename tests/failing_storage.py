"""A storage backend that fails like a broken disk: used to inject store failures.

The registry cannot tell it is a local filesystem (it has no `path()`), so
uploads go through Django's `Storage.save`, the object-store path. With
`fail_writes` the write dies after the first chunk; with `fail_deletes` every
delete fails.
"""

import contextlib
import errno
import os

from django.core.files.storage import FileSystemStorage


def _injected() -> OSError:
    return OSError(errno.EIO, "Input/output error (injected)")


class FailingStorage(FileSystemStorage):
    def __init__(self, *, fail_writes=True, fail_deletes=True, **kwargs):
        super().__init__(**kwargs)
        self.fail_writes = fail_writes
        self.fail_deletes = fail_deletes

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

    def delete(self, name):
        if self.fail_deletes:
            raise _injected()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._real_path(name))
