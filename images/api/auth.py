"""Who is calling: a DRF token, sent the way Glance clients send one, a Keystone
token (in Keystone mode), or a session.

Glance clients put the token in ``X-Auth-Token``; curl users and DRF habits use
``Authorization: Token <key>``. Both name the same DRF token. Token requests are
CSRF-exempt (DRF only enforces CSRF for session authentication), while a browser's
session writes keep their CSRF check.

In Keystone mode ``X-Auth-Token`` carries a Keystone token instead, which
keystonemiddleware has validated (glance_site/wsgi.py) before Django runs; the
identity it confirmed is in the request's headers.
"""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, TokenAuthentication

from images.identity import KeystoneIdentity


class GlanceTokenAuthentication(TokenAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        key = request.META.get("HTTP_X_AUTH_TOKEN")
        if key is None:
            return super().authenticate(request)
        key = key.strip()
        if not key or " " in key:
            raise exceptions.AuthenticationFailed("Invalid token header in X-Auth-Token.")
        return self.authenticate_credentials(key)

    def authenticate_header(self, request):
        return f'{self.keyword} realm="image registry"'


class KeystoneAuthentication(BaseAuthentication):
    """The caller keystonemiddleware's auth_token confirmed. A token it refused
    (malformed, expired, revoked) is a 401 naming Keystone, as Glance answers; no
    token at all leaves the request to the session."""

    def authenticate(self, request):
        identity = KeystoneIdentity.from_environ(request.META)
        if identity is not None:
            return (identity, None)
        if request.META.get("HTTP_X_AUTH_TOKEN"):
            raise exceptions.AuthenticationFailed(
                "The request you have made requires authentication."
            )
        return None

    def authenticate_header(self, request):
        return f'Keystone uri="{settings.KEYSTONE_AUTH_URL}"'


class GlanceTokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI description of the two ways to send the token: either one will do."""

    target_class = GlanceTokenAuthentication
    name = ["xAuthToken", "tokenAuth"]

    def get_security_requirement(self, auto_schema):
        return [{"xAuthToken": []}, {"tokenAuth": []}]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-Auth-Token",
                "description": "The API token, as Glance clients send it.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": 'The same token as "Token <key>".',
            },
        ]
