"""Request bodies Glance clients send: JSON, JSON patches, and raw image data.

Image data is never parsed: `upload_stream` hands the view the WSGI input itself,
so a multi-gigabyte upload streams to the store in fixed chunks and is never held
in memory or spooled to a temporary file.
"""

import json

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser, JSONParser

from images.api.socket_bodies import socket_body
from images.errors import InvalidInput

PATCH_V21 = "application/openstack-images-v2.1-json-patch"
PATCH_V20 = "application/openstack-images-v2.0-json-patch"
OCTET_STREAM = "application/octet-stream"
# Glance's documents are a few levels deep (an image, a patch of operations); this
# bounds the work a hostile body can cause in the code that walks it.
MAX_JSON_DEPTH = 32


class RequestBodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."


def _load_json(stream, encoding="utf-8"):
    # DRF reads the body through the request stream, which DATA_UPLOAD_MAX_MEMORY_SIZE
    # does not bound (only request.body and form parsing check it): bound it here.
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    raw = stream.read(limit + 1) if limit is not None else stream.read()
    if limit is not None and len(raw) > limit:
        raise RequestBodyTooLarge(f"Request body is larger than {limit} bytes.")
    try:
        body = json.loads(raw.decode(encoding))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise exceptions.ParseError("Malformed JSON in request body.") from None
    _check_json(body)
    return body


def _check_json(body) -> None:
    """Refuse what no database column can hold: NUL characters (PostgreSQL rejects
    them in text) and lone surrogates (not encodable as UTF-8), and absurd nesting."""
    pending = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise exceptions.ParseError(
                f"The request body is nested deeper than {MAX_JSON_DEPTH} levels."
            )
        if isinstance(value, dict):
            pending.extend((key, depth) for key in value)
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            if "\x00" in value:
                raise exceptions.ParseError(
                    "Strings in the request body may not contain NUL characters (\\u0000)."
                )
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise exceptions.ParseError(
                    "Strings in the request body may not contain unpaired surrogates "
                    "(\\ud800-\\udfff)."
                ) from None


class GlanceJSONParser(JSONParser):
    """JSON with Glance's message for a malformed body."""

    def parse(self, stream, media_type=None, parser_context=None):
        if stream is None:
            return {}
        return _load_json(stream)


class _JSONPatchParser(BaseParser):
    style = ""

    def parse(self, stream, media_type=None, parser_context=None):
        body = [] if stream is None else _load_json(stream)
        if not isinstance(body, list):
            raise exceptions.ParseError("Request body must be a JSON array of operation objects.")
        return {"style": self.style, "operations": body}


class JSONPatch21Parser(_JSONPatchParser):
    """Draft-10 style: ``{"op": "replace", "path": "/name", "value": ...}``."""

    media_type = PATCH_V21
    style = "2.1"


class JSONPatch20Parser(_JSONPatchParser):
    """Draft-4 style: ``{"replace": "/name", "value": ...}``."""

    media_type = PATCH_V20
    style = "2.0"


def patch_operations(request) -> tuple[str, list]:
    """The JSON patch of a PATCH request: its style ("2.1" or "2.0") and operations.

    DRF skips the parsers when a request has no body, so a PATCH without one (or
    without any Content-Type) is refused here, as Glance does, rather than arriving
    at the view as an empty dict.
    """
    data = request.data
    if isinstance(data, dict) and "style" in data:
        return data["style"], data["operations"]
    content_type = (request.META.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    if content_type in (PATCH_V21, PATCH_V20):
        raise exceptions.ParseError("Request body must be a JSON array of operation objects.")
    raise exceptions.UnsupportedMediaType(
        content_type, detail=f"Invalid content type {content_type or '(none)'}"
    )


class OctetStreamParser(BaseParser):
    """Declares the upload media type (for 415s and the browsable form); reads nothing."""

    media_type = OCTET_STREAM

    def parse(self, stream, media_type=None, parser_context=None):
        return {}


def _declared_size(meta) -> int | None:
    for header in ("HTTP_X_OPENSTACK_IMAGE_SIZE", "CONTENT_LENGTH"):
        raw = (meta.get(header) or "").strip()
        if raw:
            try:
                size = int(raw)
            except ValueError:
                raise InvalidInput(
                    f"Invalid {header.removeprefix('HTTP_')} value {raw!r}"
                ) from None
            if size < 0:
                raise InvalidInput(f"Invalid {header.removeprefix('HTTP_')} value {raw!r}")
            return size
    return None


def upload_stream(request):
    """The raw request body as a readable stream, and the size the client declared.

    glanceclient sends ``Transfer-Encoding: chunked`` without Content-Length; Django
    would then see an empty body, so with a de-chunking server (gunicorn sets
    ``wsgi.input_terminated``) the WSGI input is read directly. Otherwise Django's
    own stream, bounded by Content-Length, is the body. ``x-openstack-image-size``
    wins over Content-Length, as in Glance.
    """
    meta = request.META
    content_type = (meta.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    if content_type != OCTET_STREAM:
        raise exceptions.UnsupportedMediaType(
            content_type, detail=f"Invalid content type {content_type or '(none)'}"
        )
    django_request = getattr(request, "_request", request)
    chunked = "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    stream = meta["wsgi.input"] if meta.get("wsgi.input_terminated") or chunked else django_request
    declared_size = _declared_size(meta)
    content_length = (meta.get("CONTENT_LENGTH") or "").strip()
    direct = socket_body(meta)
    if direct is not None:
        return direct, declared_size
    if not chunked and content_length.isdigit():
        stream = _LengthFramedBody(stream, int(content_length))
    return stream, declared_size


class _LengthFramedBody:
    """A Content-Length body that ends early means the connection closed: say so.

    The WSGI server just reports end-of-input, which would read as a short upload
    ("size mismatch") and hide that the client went away mid-body.
    """

    def __init__(self, stream, length: int):
        self.stream = stream
        self.length = length
        self.received = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size)
        self.received += len(chunk)
        if not chunk and size != 0 and self.received < self.length:
            raise ConnectionError(
                f"the connection closed {self.length - self.received} bytes before "
                f"the end of the body (Content-Length {self.length})"
            )
        return chunk


__all__ = [
    "GlanceJSONParser",
    "JSONPatch20Parser",
    "JSONPatch21Parser",
    "OctetStreamParser",
    "patch_operations",
    "upload_stream",
]
