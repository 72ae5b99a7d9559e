"""Images and members in Glance's wire format, and the checks on what clients send.

The accepted input is exactly what ``/v2/schemas/image`` describes (schemas.py):
glanceclient validates against that schema before sending, so the two must agree.
Read-only and reserved names answer 403 as in Glance; extra properties are
strings and are flattened into the image's top level on the way out.
"""

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from django.conf import settings
from django.core.validators import RegexValidator
from django.http import QueryDict
from rest_framework import serializers

from images import selectors
from images.api import schemas
from images.api.deprecation import deprecation_fields
from images.enums import ContainerFormat, DiskFormat, MemberStatus, Status, Visibility
from images.errors import Conflict, Forbidden, InvalidInput
from images.models import Image, ImageLocation, ImageMember
from images.services.locations import shown_url

IMAGE_SCHEMA_PATH = "/v2/schemas/image"
MEMBER_SCHEMA_PATH = "/v2/schemas/member"


def isotime(value: datetime | None) -> str | None:
    """Glance's timestamps: UTC, whole seconds, a literal Z."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_path(image_id) -> str:
    return f"/v2/images/{image_id}"


def image_representation(
    image: Image,
    *,
    tags: list[str] | None = None,
    properties: dict[str, str] | None = None,
    locations: list[ImageLocation] | None = None,
) -> dict:
    """The image as Glance shows it: extra properties first, then the core keys.

    A list passes each image's `tags` and `properties`, fetched for the whole page.
    `locations` are those the reader may see; they are shown (as `locations`, and the
    first as `direct_url`) only where the operator switched that on, as in Glance."""
    if properties is None:
        properties = {prop.name: prop.value for prop in image.properties.all()}
    if tags is None:
        tags = [tag.value for tag in image.tags.all()]
    data: dict = dict(properties)
    data.update(
        {
            "name": image.name,
            "disk_format": image.disk_format,
            "container_format": image.container_format,
            "visibility": image.visibility,
            "size": image.size,
            "virtual_size": image.virtual_size,
            "status": image.status,
            "checksum": image.checksum,
            "protected": image.protected,
            "min_ram": image.min_ram,
            "min_disk": image.min_disk,
            "owner": image.owner,
            "os_hidden": image.os_hidden,
            "os_hash_algo": image.os_hash_algo,
            "os_hash_value": image.os_hash_value,
            "id": str(image.pk),
            "created_at": isotime(image.created_at),
            "updated_at": isotime(image.updated_at),
            **_locations_shown(locations or []),
            "tags": tags,
            "self": image_path(image.pk),
            "file": f"{image_path(image.pk)}/file",
            "schema": IMAGE_SCHEMA_PATH,
        }
    )
    if image.status == Status.PENDING_DELETE:
        # Only those who may restore ever see these: when the delete happened and
        # when the scrubber will remove the data (after which restore is impossible).
        data["deleted_at"] = isotime(image.deleted_at)
        data["os_glance_scrub_at"] = isotime(selectors.scrub_due_at(image))
        data["os_glance_restore_status"] = image.status_before_delete or Status.ACTIVE
    data.update(deprecation_fields(image))
    return data


def _locations_shown(locations: list[ImageLocation]) -> dict:
    shown: dict = {}
    if settings.IMAGES_SHOW_MULTIPLE_LOCATIONS:
        shown["locations"] = [
            {"url": shown_url(loc), "metadata": loc.metadata} for loc in locations
        ]
    if settings.IMAGES_SHOW_DIRECT_URL and locations:
        shown["direct_url"] = shown_url(locations[0])
    return shown


def _from_form(field: serializers.Field) -> bool:
    """The browsable API's HTML form sends strings; JSON clients must send real types."""
    root = field.root
    return isinstance(getattr(root, "initial_data", None), QueryDict)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "{input!r} is not of type 'boolean'."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or _from_form(self):
            return super().to_internal_value(data)
        self.fail("invalid", input=data)


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "{input!r} is not of type 'integer'."}

    def to_internal_value(self, data):
        if _from_form(self) and isinstance(data, str) and re.fullmatch(r"\s*-?\d+\s*", data):
            data = int(data)
        if isinstance(data, int) and not isinstance(data, bool):
            return super().to_internal_value(data)
        # Not DRF's own conversion: its "invalid" message lacks the input we name.
        self.fail("invalid", input=data)


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "{input!r} is not of type 'string'."}

    def to_internal_value(self, data):
        if isinstance(data, str):
            return super().to_internal_value(data)
        self.fail("invalid", input=data)


def check_writable(name: str) -> None:
    """403 for names a client may never set, as Glance answers."""
    if name in schemas.READ_ONLY:
        raise Forbidden(f"Attribute '{name}' is read-only.")
    if name in schemas.RESERVED or name.startswith(schemas.RESERVED_PREFIX):
        raise Forbidden(f"Attribute '{name}' is reserved.")


def validate_extra_property(name: str, value) -> str:
    if len(name) > 255:
        raise InvalidInput(f"Property name {name[:40]!r}... is longer than 255 characters.")
    if not isinstance(value, str):
        raise InvalidInput(
            f"Provided object does not match schema 'image': {value!r} is not of type 'string'"
        )
    return value


class ImageSerializer(serializers.Serializer):
    """Create an image (POST /v2/images); its output is the Glance image JSON."""

    id = StrictCharField(
        required=False, validators=[RegexValidator(schemas.UUID_PATTERN, "Not a valid UUID.")]
    )
    name = StrictCharField(max_length=255, allow_null=True, allow_blank=True, required=False)
    disk_format = serializers.ChoiceField(
        choices=DiskFormat.choices, allow_null=True, required=False
    )
    container_format = serializers.ChoiceField(
        choices=ContainerFormat.choices, allow_null=True, required=False
    )
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    protected = StrictBooleanField(required=False)
    os_hidden = StrictBooleanField(required=False)
    min_disk = StrictIntegerField(
        min_value=0, max_value=schemas.MAX_INT32, required=False, help_text="GiB"
    )
    min_ram = StrictIntegerField(
        min_value=0, max_value=schemas.MAX_INT32, required=False, help_text="MiB"
    )
    owner = StrictCharField(min_length=1, max_length=255, allow_null=True, required=False)
    tags = serializers.ListField(
        child=StrictCharField(min_length=1, max_length=255), required=False, allow_empty=True
    )

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise InvalidInput("Request body must be a JSON object.")
        if isinstance(data, QueryDict):
            # The browsable form: only the declared fields (and no CSRF token).
            core = {k: v for k, v in data.items() if k in self.fields and v != ""}
            if "tags" in data:
                core["tags"] = [t for t in data.getlist("tags") if t]
            extra: dict[str, str] = {}
        else:
            for key in data:
                if not (key == "size" and data[key] == 0):
                    check_writable(key)
            core = {k: v for k, v in data.items() if k in self.fields}
            extra = {
                k: validate_extra_property(k, v)
                for k, v in data.items()
                if k not in self.fields and k != "size"
            }
        validated = super().to_internal_value(core)
        if "tags" in validated:
            validated["tags"] = sorted(set(validated["tags"]))
        if isinstance(data, Mapping) and data.get("size") == 0:
            validated["size"] = 0
        validated["properties"] = extra
        return validated

    def to_representation(self, instance):
        return image_representation(instance)


# --- PATCH ---------------------------------------------------------------------------

PATCH_OPS = ("add", "remove", "replace")
CORE_FIELDS = frozenset(ImageSerializer().fields) - {"id"}


def _decode_path(path) -> str:
    if not isinstance(path, str) or not path.startswith("/") or path.endswith("/") or "//" in path:
        raise InvalidInput(
            "Json path should start with a '/', end with no '/', no 2 subsequent '/' are allowed."
        )
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]
    if len(parts) != 1:
        raise InvalidInput("Nested paths are not allowed")
    return parts[0]


def _normalize(style: str, operation) -> tuple[str, str, object]:
    if not isinstance(operation, Mapping):
        raise InvalidInput("Operations must be JSON objects.")
    if style == "2.1":
        op = operation.get("op")
        if op not in PATCH_OPS:
            raise InvalidInput(
                f"Invalid operation: `{op}`. It must be one of the following: add, remove, replace."
            )
        if "path" not in operation:
            raise InvalidInput("Unable to find `path` in JSON Schema change.")
        path = operation["path"]
    else:
        ops = [key for key in PATCH_OPS if key in operation]
        if len(ops) != 1:
            raise InvalidInput(
                'Operation objects must contain exactly one member named "add", '
                '"remove", or "replace".'
            )
        op, path = ops[0], operation[ops[0]]
    if op != "remove" and "value" not in operation:
        raise InvalidInput(
            "Unable to find `value` in JSON Schema change. A `value` must be specified."
        )
    return op, _decode_path(path), operation.get("value")


def update_from_patch(image: Image, style: str, operations: list) -> dict:
    """The arguments of services.image_update that this JSON patch amounts to.

    All operations apply to a working copy first, so a failing one changes nothing.
    """
    fields = ImageSerializer().fields
    current_props = {p.name: p.value for p in image.properties.all()}
    props = dict(current_props)
    changes: dict = {}
    tags = None
    for operation in operations:
        op, name, value = _normalize(style, operation)
        check_writable(name)
        if name == "id":
            raise Forbidden("Attribute 'id' is read-only.")
        if name in CORE_FIELDS:
            if op == "remove":
                raise Forbidden(f"Property {name} may not be removed.")
            validated = fields[name].run_validation(value)
            if name == "tags":
                tags = sorted(set(validated))
            else:
                changes[name] = validated
            continue
        if op == "remove" or op == "replace":
            if name not in props:
                raise Conflict(f"Property {name} does not exist.")
        elif style == "2.0" and name in props:
            raise Conflict(f"Property {name} already present.")
        if op == "remove":
            del props[name]
        else:
            props[name] = validate_extra_property(name, value)
    changes = {k: v for k, v in changes.items() if getattr(image, k) != v}
    return {
        "changes": changes,
        "tags": tags,
        "properties": {k: v for k, v in props.items() if current_props.get(k) != v},
        "remove_properties": sorted(set(current_props) - set(props)),
    }


# --- members --------------------------------------------------------------------------


def member_representation(member: ImageMember) -> dict:
    return {
        "created_at": isotime(member.created_at),
        "image_id": str(member.image_id),
        "member_id": member.member,
        "schema": MEMBER_SCHEMA_PATH,
        "status": member.status,
        "updated_at": isotime(member.updated_at),
    }


class MemberSerializer(serializers.Serializer):
    """Share an image: ``{"member": "<project>"}``."""

    member = StrictCharField(min_length=1, max_length=255)


class MemberStatusSerializer(serializers.Serializer):
    """Answer an offer: ``{"status": "accepted"}`` (or pending, rejected)."""

    status = serializers.ChoiceField(choices=MemberStatus.choices)


def validate_tag(tag: str) -> str:
    if len(tag) > 255:
        raise InvalidInput("Tag is longer than 255 characters.")
    return tag
