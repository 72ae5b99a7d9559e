"""Schemathesis hooks for the fuzz run in test_bad_input (SCHEMATHESIS_HOOKS=tests.fuzz_hooks).

schemathesis knows no serializer for Glance's JSON-patch media types; they are JSON.
"""

import json

import schemathesis


@schemathesis.serializer(
    "application/openstack-images-v2.1-json-patch", "application/openstack-images-v2.0-json-patch"
)
def json_patch(ctx, value):
    return json.dumps(value).encode()
