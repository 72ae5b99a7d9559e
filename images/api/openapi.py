"""What the OpenAPI document (/api/schema/) says beyond what drf-spectacular infers.

drf-spectacular describes the success responses it can see in the views. The rest of
the contract lives here, so that the document tells the truth to clients and to the
schemathesis run in the tests:

- the list's query language (filters.py) as typed parameters;
- the refusals every operation can answer, in Glance's error body (errors.py);
- links from a created image to the operations on it.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from images.api import filters
from images.enums import ContainerFormat, DiskFormat, MemberStatus, Status, Visibility

_KEYS = "|".join(filters.SORT_KEYS)
_STATUSES = "|".join(Status.values)


def _choice(name: str, values, description: str) -> OpenApiParameter:
    """`value`, or `in:v1,v2` (filters._values)."""
    one = "|".join(values)
    pattern = f"^(({one})|(in:|eq:)({one})(,({one}))*)$"
    return OpenApiParameter(name, {"type": "string", "pattern": pattern}, description=description)


LIST_PARAMETERS = [
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 0, "maximum": filters.MAX_INT},
        description=f"Page size (default {filters.DEFAULT_LIMIT}, at most {filters.MAX_LIMIT}).",
    ),
    OpenApiParameter("marker", OpenApiTypes.UUID, description="Id of the last image seen."),
    OpenApiParameter(
        "sort",
        {"type": "string", "pattern": f"^({_KEYS})(:(asc|desc))?(,({_KEYS})(:(asc|desc))?)*$"},
        description="Sort keys with directions, e.g. name:asc,size:desc (not with sort_key).",
    ),
    OpenApiParameter("sort_key", {"type": "string", "enum": list(filters.SORT_KEYS)}),
    OpenApiParameter("sort_dir", {"type": "string", "enum": ["asc", "desc"]}),
    _choice("status", Status.values, "A status, or in:s1,s2."),
    _choice("disk_format", DiskFormat.values, "A disk format, or in:f1,f2."),
    _choice("container_format", ContainerFormat.values, "A container format, or in:f1,f2."),
    OpenApiParameter("visibility", {"type": "string", "enum": [*Visibility.values, "all"]}),
    OpenApiParameter(
        "member_status",
        {"type": "string", "enum": [*MemberStatus.values, "all"]},
        description="Shared images offered to the caller with this status (default accepted).",
    ),
    OpenApiParameter("name", str, description="A name, or in:n1,n2."),
    OpenApiParameter("owner", str),
    OpenApiParameter("protected", bool),
    OpenApiParameter("os_hidden", bool, description="Hidden images (default false)."),
    OpenApiParameter("checksum", str),
    OpenApiParameter("os_hash_value", str),
    OpenApiParameter("size_min", {"type": "integer", "minimum": 0, "maximum": filters.MAX_INT}),
    OpenApiParameter("size_max", {"type": "integer", "minimum": 0, "maximum": filters.MAX_INT}),
    OpenApiParameter(
        "created_at",
        str,
        description="gt|gte|lt|lte|eq|neq:<ISO 8601 time>, e.g. gte:2026-01-01T00:00:00Z.",
    ),
    OpenApiParameter("updated_at", str, description="As created_at."),
    OpenApiParameter("tag", str, many=True, description="Images with every tag given."),
    OpenApiParameter(
        "deprecation",
        str,
        description="active|deprecated|obsolete|scheduled, or in:s1,s2 (deprecation schedule).",
    ),
    OpenApiParameter("os_deprecated_at", str, description="As created_at."),
    OpenApiParameter("os_obsolete_at", str, description="As created_at."),
    OpenApiParameter("os_delete_at", str, description="As created_at."),
]

_PATCH_PATH = {"type": "string", "pattern": "^/.+", "description": "A JSON pointer: /name"}
PATCH_REQUEST = {
    "application/openstack-images-v2.1-json-patch": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "op": {"type": "string", "enum": ["add", "remove", "replace"]},
                "path": _PATCH_PATH,
                "value": {"description": "Required except for remove."},
            },
            "required": ["op", "path"],
        },
        "example": [{"op": "replace", "path": "/name", "value": "new name"}],
    },
    "application/openstack-images-v2.0-json-patch": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "add": _PATCH_PATH,
                "remove": _PATCH_PATH,
                "replace": _PATCH_PATH,
                "value": {"description": "Required except for remove."},
            },
            "minProperties": 1,
        },
        "example": [{"replace": "/name", "value": "new name"}],
    },
}

ERROR_SCHEMA = {
    "type": "object",
    "description": "Glance's error body: `code` is the status line, e.g. '404 Not Found'.",
    "properties": {
        "message": {"type": "string"},
        "code": {"type": "string"},
        "title": {"type": "string"},
    },
    "required": ["message", "code", "title"],
}

ERROR_DESCRIPTIONS = {
    "400": "Bad request: a malformed body, parameter or header.",
    "401": "Not signed in: no token, or an invalid one.",
    "403": "Not allowed (or a session write without its CSRF token).",
    "404": "No such image, or not one the caller may see.",
    "405": "Method not allowed.",
    "409": "Conflicts with the image's status or another image.",
    "410": "The image was deleted during the upload.",
    "413": "Too large: request body, image size cap, storage quota or member quota.",
    "415": "Unsupported content type.",
    "416": "The range cannot be served.",
    "429": "Too many requests: see Retry-After.",
    "503": "The image store failed.",
}


def _error_codes(path: str, method: str, operation: dict) -> set[str]:
    if not operation.get("security") or {} in operation["security"]:
        return set()  # open to everyone: the versions document
    codes = {"401", "403", "429"}
    if operation.get("parameters"):
        codes |= {"400", "404"}
    if method in ("post", "put", "patch", "delete"):
        codes |= {"400", "404", "409"}
    if operation.get("requestBody"):
        codes |= {"400", "413", "415"}
    if path.endswith("/file"):
        codes |= {"503"} | ({"410", "413"} if method == "put" else {"416"})
    if path.endswith("/members"):
        codes |= {"413"}
    return codes


def _error_content(code: str) -> dict:
    return {
        "description": ERROR_DESCRIPTIONS[code],
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}},
            "text/html": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }


def postprocess(result, generator, request, public):
    """drf-spectacular POSTPROCESSING_HOOKS entry: refusals and links."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            # DRF's ?format= picks a renderer for browsers; clients negotiate with Accept.
            parameters = [p for p in operation.pop("parameters", []) if p["name"] != "format"]
            if parameters:
                operation["parameters"] = parameters
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] == "id":
                    parameter["schema"] = {"type": "string", "format": "uuid"}
            responses = operation.setdefault("responses", {})
            for code in sorted(_error_codes(path, method, operation)):
                responses.setdefault(code, _error_content(code))
    created = result.get("paths", {}).get("/v2/images", {}).get("post", {})
    created_response = created.get("responses", {}).get("201")
    if created_response is not None:
        created_response["links"] = {
            operation["operationId"]: {
                "operationId": operation["operationId"],
                "parameters": {"id": "$response.body#/id"},
            }
            for path, operations in result["paths"].items()
            if path.startswith("/v2/images/{id}") and "{member_id}" not in path
            if "{tag}" not in path
            for operation in operations.values()
        }
    return result


# The locations API (2.17): a location as it is listed, and the body that adds one.
LOCATION = {
    "type": "object",
    "properties": {"url": {"type": "string"}, "metadata": {"type": "object"}},
    "required": ["url", "metadata"],
}
LOCATIONS_RESPONSE = {"type": "array", "items": LOCATION}
ADD_LOCATION_REQUEST = {
    "application/json": {
        "type": "object",
        "properties": {
            "url": {"type": "string", "description": "An http(s) URL of the image's data."},
            "validation_data": {
                "type": "object",
                "properties": {
                    "os_hash_algo": {"type": "string", "enum": ["sha512"]},
                    "os_hash_value": {"type": "string", "pattern": "^[0-9a-fA-F]{128}$"},
                },
                "required": ["os_hash_algo", "os_hash_value"],
                "additionalProperties": False,
            },
        },
        "required": ["url"],
        "example": {"url": "https://images.example.org/cirros.img"},
    }
}

_MOMENT = {"type": ["string", "null"], "format": "date-time"}
DEPRECATE_REQUEST = {
    "application/json": {
        "type": "object",
        "properties": {
            "os_deprecated_at": _MOMENT,
            "os_obsolete_at": _MOMENT,
            "os_delete_at": _MOMENT,
            "os_replacement_id": {"type": ["string", "null"], "format": "uuid"},
        },
        "additionalProperties": False,
        "example": {
            "os_deprecated_at": "2027-01-01T00:00:00Z",
            "os_obsolete_at": "2027-02-01T00:00:00Z",
            "os_delete_at": "2027-03-01T00:00:00Z",
        },
    }
}
