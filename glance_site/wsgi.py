"""The WSGI application, and what keeps a client's connection honest.

A request refused before its body was read (404, 409, 413, 401 on an upload) leaves
the body on the socket. gunicorn drains at most 64 KiB of it and otherwise closes
the connection after announcing `Connection: keep-alive`, so a client that reuses
its connections (requests.Session, openstacksdk, Nova) fails its *next* request with
"Remote end closed connection without response". Here the rest of a modest body is
read and dropped, keeping the connection usable; a larger one makes gunicorn answer
`Connection: close`, so the client knows to open a new connection.
"""

import contextlib
import os
import socket
import time

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glance_site.settings")

# Reading this much of a refused body costs less than the client's reconnect.
DRAIN_LIMIT = 4 * 1024 * 1024
DRAIN_SECONDS = 2.0
_CHUNK = 256 * 1024

django_application = get_wsgi_application()


def _keystone_wrapped(app):
    """In Keystone mode, keystonemiddleware's auth_token -- Glance's own, with its
    token cache -- validates X-Auth-Token and replaces every identity header a client
    may have sent with the token's. Inside the connection keeper below, which needs
    gunicorn's own start_response."""
    if not settings.KEYSTONE_AUTHTOKEN:
        return app
    # Imported here: only Keystone mode pays for loading it and its ~36 packages.
    from keystonemiddleware.auth_token import AuthProtocol

    return AuthProtocol(app, dict(settings.KEYSTONE_AUTHTOKEN))


inner_application = _keystone_wrapped(django_application)


def application(environ, start_response):
    response = inner_application(environ, start_response)
    sock = environ.get("gunicorn.socket")
    if sock is not None and _has_body(environ) and not _drained(environ["wsgi.input"], sock):
        # gunicorn drops a `Connection` header set by the application; its response
        # object (whose method start_response is) is what decides the header.
        force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
        if force_close is not None:
            force_close()
    return response


def _has_body(environ) -> bool:
    length = (environ.get("CONTENT_LENGTH") or "").strip()
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    return chunked or (length not in ("", "0"))


def _drained(body, sock: socket.socket) -> bool:
    """Read what is left of the request body, if it is small and arrives promptly.

    gunicorn's body returns b"" at its end without touching the socket, so a request
    whose body was read (or that had none) costs one call.
    """
    deadline = time.monotonic() + DRAIN_SECONDS
    drained = 0
    prior_timeout = sock.gettimeout()
    try:
        while drained <= DRAIN_LIMIT:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            sock.settimeout(remaining)
            chunk = body.read(_CHUNK)
            if not chunk:
                return True
            drained += len(chunk)
        return False
    except Exception:
        # The client went away (OSError) or sent a malformed chunk (gunicorn's
        # parse errors): either way there is no connection worth keeping.
        return False
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(prior_timeout)
