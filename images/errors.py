"""Domain errors raised by the services.

Each one says what went wrong in words a user can act on. Callers translate them
in one place each: the API's exception handler, the admin's message helper and the
commands' error line.
"""


class ImageError(Exception):
    """Base of every refusal the domain can give."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ImageNotFound(ImageError):
    pass


class InvalidInput(ImageError):
    """The request itself is wrong (bad value, missing format, size mismatch)."""


class UploadInterrupted(InvalidInput):
    """The client stopped sending before the image data was complete."""


class Conflict(ImageError):
    """The request clashes with the image's current state (or another image)."""


class InvalidTransition(Conflict):
    """The image's status does not allow the operation, or changed under us."""


class Forbidden(ImageError):
    """The actor may not do this (permission, protected image, ownership)."""


class FormatMismatch(ImageError):
    """The data is not in the image's disk_format (Glance answers 415)."""


class UnsafeImage(InvalidInput):
    """The data fails a format safety check (a backing file, an extent elsewhere)."""

    def __init__(self, message: str, *, checks: list[str]):
        super().__init__(message)
        self.checks = checks


class ImageTooLarge(ImageError):
    """Over the size cap or the owner's storage quota."""


class ImageGone(ImageError):
    """The image was deleted while its data was being uploaded."""


class ImageObsolete(ImageError):
    """The image's deprecation schedule has made it obsolete: new use is refused
    (410 Gone), and the message names its replacement."""

    def __init__(self, message: str, *, replacement_id=None):
        super().__init__(message)
        self.replacement_id = replacement_id


class StoreError(ImageError):
    """The image store failed; nothing was changed."""
