"""A filesystem store that writes down every delete it is asked for: how the tests
count store deletes across threads and processes (several scrubbers on several
nodes), to show that no image's bytes are removed twice.

It is Django's FileSystemStorage in every other respect (it keeps `path()`, so the
registry writes to it as to any local store). Each delete appends one line, the
object's name, to a log file in one write(2) with O_APPEND, so lines from several
processes never interleave. The log's path comes from the `log` option or, for a
server or command started as a subprocess, from the environment:

    IMAGES_STORAGE_BACKEND=tests.counting_storage.CountingStorage
    COUNTING_STORAGE_LOG=/tmp/.../deletes.log
"""

import os
from pathlib import Path

from django.core.files.storage import FileSystemStorage


class CountingStorage(FileSystemStorage):
    def __init__(self, *, log=None, **kwargs):
        super().__init__(**kwargs)
        self.log = log or os.environ["COUNTING_STORAGE_LOG"]

    def delete(self, name):
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{name}\n".encode())
        finally:
            os.close(fd)
        super().delete(name)


def counted_deletes(log) -> list[str]:
    """The names deleted, one entry per delete asked for, in order."""
    return Path(log).read_text().split() if os.path.exists(log) else []
