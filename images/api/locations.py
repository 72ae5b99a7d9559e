"""Locations on the wire: the JSON-patch operations on ``/locations`` and the body of
the locations API (2.17), checked as Glance's schemas check them (400) before the
services see them (images/services/locations.py)."""

from collections.abc import Mapping

from images.api.serializers import PATCH_OPS
from images.errors import InvalidInput
from images.services import LocationChange, LocationSpec

# Glance's `_path_depth_limits`: /locations/- (or /N) to add and remove, /locations to replace.
PATH_DEPTH = {"add": 2, "remove": 2, "replace": 1}
HASH_LIMITS = {"checksum": (32, 32), "os_hash_algo": (0, 64), "os_hash_value": (0, 128)}
URL_MAX = 255


def _op_and_path(style: str, operation) -> tuple[object, object]:
    if not isinstance(operation, Mapping):
        return None, None
    if style == "2.1":
        return operation.get("op"), operation.get("path")
    ops = [key for key in PATCH_OPS if key in operation]
    return (ops[0], operation[ops[0]]) if len(ops) == 1 else (None, None)


def _is_locations(path) -> bool:
    return isinstance(path, str) and (path == "/locations" or path.startswith("/locations/"))


def split_location_operations(style: str, operations: list) -> tuple[list[LocationChange], list]:
    """The patch's operations on /locations, parsed, and the others as they came."""
    if not isinstance(operations, list):
        return [], operations
    changes, others = [], []
    for operation in operations:
        op, path = _op_and_path(style, operation)
        if op not in PATCH_OPS or not _is_locations(path):
            others.append(operation)
            continue
        parts = path[1:].split("/")
        if len(parts) != PATH_DEPTH[op]:
            raise InvalidInput(f"Invalid JSON pointer for this resource: '{path}'")
        if op != "remove" and "value" not in operation:
            raise InvalidInput(
                "Unable to find `value` in JSON Schema change. A `value` must be specified."
            )
        value = operation.get("value")
        if op == "replace":
            if not isinstance(value, list):
                raise _schema_error(f"{value!r} is not of type 'array'")
            locations = tuple(_location(item) for item in value)
        else:
            locations = (_location(value),) if op == "add" else ()
        changes.append(LocationChange(op, parts[1] if len(parts) == 2 else None, locations))
    return changes, others


def _schema_error(detail: str) -> InvalidInput:
    return InvalidInput(f"Provided object does not match schema 'image': {detail}")


def _string(value, name: str, low: int, high: int) -> str:
    if not isinstance(value, str):
        raise _schema_error(f"{value!r} is not of type 'string' ({name})")
    if not low <= len(value) <= high:
        raise _schema_error(f"{name} must be {low} to {high} characters long")
    return value


def _location(value) -> LocationSpec:
    """A location of Glance's image schema: url and metadata required, and optional
    validation_data with os_hash_algo and os_hash_value required in it."""
    if not isinstance(value, Mapping):
        raise _schema_error(f"{value!r} is not of type 'object'")
    for name in ("url", "metadata"):
        if name not in value:
            raise _schema_error(f"'{name}' is a required property")
    url = _string(value["url"], "url", 0, URL_MAX)
    if not isinstance(value["metadata"], Mapping):
        raise _schema_error(f"{value['metadata']!r} is not of type 'object' (metadata)")
    data = value.get("validation_data", {})
    if not isinstance(data, Mapping):
        raise _schema_error(f"{data!r} is not of type 'object' (validation_data)")
    extra = set(data) - set(HASH_LIMITS)
    if extra:
        raise _schema_error(f"Additional properties are not allowed ({sorted(extra)[0]!r})")
    if data:
        for name in ("os_hash_algo", "os_hash_value"):
            if name not in data:
                raise _schema_error(f"'{name}' is a required property (validation_data)")
    for name, value_ in data.items():
        _string(value_, name, *HASH_LIMITS[name])
    return LocationSpec(url=url, metadata=dict(value["metadata"]), validation_data=dict(data))


ADD_LOCATION_ALGOS = ("sha1", "sha256", "sha512", "md5")


def add_location_body(body) -> tuple[str, dict]:
    """The body of POST /v2/images/{id}/locations: ``{"url": ..., "validation_data":
    {"os_hash_algo": ..., "os_hash_value": ...}}`` (both hash keys or neither)."""

    def error(detail: str) -> InvalidInput:
        return InvalidInput(f"Provided object does not match schema 'location': {detail}")

    if not isinstance(body, Mapping):
        raise error(f"{body!r} is not of type 'object'")
    if "url" not in body:
        raise error("'url' is a required property")
    url = body["url"]
    if not isinstance(url, str):
        raise error(f"{url!r} is not of type 'string'")
    data = body.get("validation_data") or {}
    if not isinstance(data, Mapping):
        raise error(f"{data!r} is not of type 'object'")
    extra = set(data) - {"os_hash_algo", "os_hash_value"}
    if extra:
        raise error(f"Additional properties are not allowed ({sorted(extra)[0]!r})")
    if len(data) == 1:
        missing = ({"os_hash_algo", "os_hash_value"} - set(data)).pop()
        raise error(f"'{missing}' is a dependency of '{next(iter(data))}'")
    algo, value = data.get("os_hash_algo"), data.get("os_hash_value")
    if data and algo not in ADD_LOCATION_ALGOS:
        raise error(f"{algo!r} is not one of {list(ADD_LOCATION_ALGOS)}")
    if data and (not isinstance(value, str) or len(value) > 128):
        raise error(f"{value!r} is not a string of at most 128 characters")
    return url, dict(data)
