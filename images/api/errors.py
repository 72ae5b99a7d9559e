"""The one place where refusals become HTTP responses.

Domain errors (images.errors) and DRF's own exceptions map to a status code here,
and the body is negotiated on `Accept` the way Glance's WebOb does it, because
glanceclient and openstacksdk parse these bodies to show the message:

- ``application/json``  → ``{"message", "code", "title"}``, ``code`` being the status line;
- ``*/*`` or ``text/html`` → a small HTML page (what glanceclient asks for);
- no ``Accept`` at all → plain text.

A browser on the browsable API gets DRF's page with the same JSON in it.
"""

import logging
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.utils.html import escape
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from images import errors

DOMAIN_STATUS = [
    # Subclasses before their bases: the first match wins.
    (errors.ImageNotFound, status.HTTP_404_NOT_FOUND),
    (errors.FormatMismatch, status.HTTP_415_UNSUPPORTED_MEDIA_TYPE),
    (errors.InvalidInput, status.HTTP_400_BAD_REQUEST),
    (errors.Conflict, status.HTTP_409_CONFLICT),
    (errors.Forbidden, status.HTTP_403_FORBIDDEN),
    (errors.ImageTooLarge, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE),
    (errors.ImageGone, status.HTTP_410_GONE),
    (errors.ImageObsolete, status.HTTP_410_GONE),
    (errors.StoreError, status.HTTP_503_SERVICE_UNAVAILABLE),
]

logger = logging.getLogger(__name__)

# Headers DRF attaches to some of its exceptions, which clients rely on.
PASSED_HEADERS = ("WWW-Authenticate", "Retry-After", "Accept-Patch", "Allow")


def status_and_message(exc: Exception, method: str = "") -> tuple[int, str, dict[str, str]] | None:
    for kind, code in DOMAIN_STATUS:
        if isinstance(exc, kind):
            return code, exc.message, {}
    if isinstance(exc, RequestDataTooBig):
        # Django's own bound on a body read whole (DATA_UPLOAD_MAX_MEMORY_SIZE); image
        # data is streamed and never meets it.
        return (
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            f"Request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
            {},
        )
    if isinstance(exc, Http404):
        return status.HTTP_404_NOT_FOUND, "The resource could not be found.", {}
    if isinstance(exc, OperationalError | InterfaceError):
        # Lost or locked database: the request may well succeed if retried.
        logger.error("Database unavailable", exc_info=exc)
        return (
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "The registry's database is unavailable; try again later.",
            {},
        )
    if isinstance(exc, exceptions.APIException):
        return exc.status_code, _flatten(exc.detail), _headers_of(exc, method)
    return None


def _headers_of(exc: exceptions.APIException, method: str) -> dict[str, str]:
    headers = {}
    challenge = isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed)
    # In Keystone mode auth_token adds its own `Keystone uri="..."` to every 401.
    if challenge and not settings.KEYSTONE_AUTHTOKEN:
        headers["WWW-Authenticate"] = 'Token realm="image registry"'
    if isinstance(exc, exceptions.UnsupportedMediaType) and method == "PATCH":
        headers["Accept-Patch"] = (
            "application/openstack-images-v2.0-json-patch, "
            "application/openstack-images-v2.1-json-patch"
        )
    wait = getattr(exc, "wait", None)
    if wait is not None:
        headers["Retry-After"] = str(int(wait))
    return headers


def _flatten(detail) -> str:
    """DRF error details (str, list or dict of them) as one readable line."""
    if isinstance(detail, dict):
        parts = []
        for key, value in detail.items():
            text = _flatten(value)
            parts.append(text if key == "non_field_errors" else f"{key}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def glance_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every error of the API leaves through here."""
    request = context.get("request")
    mapped = status_and_message(exc, getattr(request, "method", ""))
    if mapped is None:
        return None  # a bug: let Django's 500 handling and logging see it
    code, message, headers = mapped
    return error_response(request, code, message, headers=headers)


def error_response(request, code: int, message: str, *, headers=None) -> HttpResponse:
    phrase = HTTPStatus(code).phrase
    status_line = f"{code} {phrase}"
    headers = dict(headers or {})
    kind = _negotiate(request)
    body = {"message": message, "code": status_line, "title": phrase}
    if kind in ("api", "json") and isinstance(request, Request):
        return Response(body, status=code, headers=headers)
    if kind in ("api", "json"):
        response = JsonResponse(body, status=code)
    elif kind == "html":
        html = (
            f"<html>\n <head>\n  <title>{status_line}</title>\n </head>\n <body>\n"
            f"  <h1>{status_line}</h1>\n  {escape(message)}<br /><br />\n\n\n\n </body>\n</html>"
        )
        response = HttpResponse(html, status=code, content_type="text/html; charset=UTF-8")
    else:
        response = HttpResponse(
            f"{status_line}\n\n{message}\n\n   ",
            status=code,
            content_type="text/plain; charset=UTF-8",
        )
    for key, value in headers.items():
        response[key] = value
    return response


def _negotiate(request) -> str:
    """Which body to send: 'api' (browsable page), 'json', 'html' or 'plain'."""
    if request is None:
        return "json"
    renderer = getattr(request, "accepted_renderer", None)
    if renderer is not None and renderer.format == "api":
        return "api"
    raw = request.META.get("HTTP_ACCEPT", "").strip()
    if not raw:
        return "plain"
    django_request = getattr(request, "_request", request)
    preferred = django_request.get_preferred_type(["text/html", "application/json", "text/plain"])
    return {"text/html": "html", "application/json": "json", "text/plain": "plain"}.get(
        preferred, "plain"
    )


# Django's own error views (glance_site.urls), for requests no API view answered: an
# unknown path such as /v2/images/a/b, a disallowed Host, a crash. Same bodies as above.


def page_not_found(request, exception=None):
    return error_response(request, status.HTTP_404_NOT_FOUND, "The resource could not be found.")


def bad_request(request, exception=None):
    return error_response(request, status.HTTP_400_BAD_REQUEST, "The request is malformed.")


def permission_denied(request, exception=None):
    return error_response(request, status.HTTP_403_FORBIDDEN, "Access was denied to this resource.")


def server_error(request):
    return error_response(
        request,
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        "The server has either erred or is incapable of performing the requested operation.",
    )
