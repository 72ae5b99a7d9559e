"""Helpers for the in-process API tests: a client signed in with a real DRF token,
sent the way Glance clients send it."""

import json

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

PATCH_V21 = "application/openstack-images-v2.1-json-patch"
PATCH_V20 = "application/openstack-images-v2.0-json-patch"


def token_client(user, *, header: str = "X-Auth-Token") -> APIClient:
    key = Token.objects.get_or_create(user=user)[0].key
    client = APIClient()
    if header == "X-Auth-Token":
        client.credentials(HTTP_X_AUTH_TOKEN=key, HTTP_ACCEPT="application/json")
    else:
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}", HTTP_ACCEPT="application/json")
    return client


def create(client, **body):
    return client.post("/v2/images", json.dumps(body), content_type="application/json")


def patch(client, image_id, operations, media_type=PATCH_V21):
    return client.patch(f"/v2/images/{image_id}", json.dumps(operations), content_type=media_type)


def upload(client, image_id, data: bytes, **headers):
    return client.put(
        f"/v2/images/{image_id}/file",
        data,
        content_type=headers.pop("content_type", "application/octet-stream"),
        **headers,
    )
