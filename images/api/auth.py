"""Who is calling: a DRF token, sent the way Glance clients send one, or a session.

Glance clients put the token in ``X-Auth-Token``; curl users and DRF habits use
``Authorization: Token <key>``. Both name the same DRF token. Token requests are
CSRF-exempt (DRF only enforces CSRF for session authentication), while a browser's
session writes keep their CSRF check.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication


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
