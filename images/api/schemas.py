"""The JSON schemas Glance clients fetch from ``/v2/schemas/...``.

glanceclient validates every image it creates or patches against
``/v2/schemas/image`` *before sending*, and builds the CLI's options from it, so
this schema states exactly what the server accepts (see serializers.py): the
same enums, the same ``null`` unions, string-only extra properties.
"""

from django.conf import settings

from images.enums import (
    ContainerFormat,
    DeprecationState,
    DiskFormat,
    MemberStatus,
    Status,
    Visibility,
)

UUID_PATTERN = (
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"
)
# min_ram and min_disk are 32-bit columns, in Glance as here.
MAX_INT32 = 2**31 - 1


def _nullable(kind: str, description: str, **extra) -> dict:
    return {"type": ["null", kind], "description": description, **extra}


def _read_only(kind, description: str, **extra) -> dict:
    return {"type": kind, "readOnly": True, "description": description, **extra}


IMAGE_PROPERTIES = {
    "id": {
        "type": "string",
        "pattern": UUID_PATTERN,
        "description": "The image's identifier (a UUID); may be chosen on create.",
    },
    "name": _nullable("string", "A name for people; need not be unique.", maxLength=255),
    "status": _read_only(
        "string", "Where the image is in its lifecycle.", enum=list(Status.values)
    ),
    "visibility": {
        "type": "string",
        "enum": list(Visibility.values),
        "description": "Who can see the image. Only staff may make an image public.",
    },
    "protected": {"type": "boolean", "description": "A protected image cannot be deleted."},
    "os_hidden": {
        "type": "boolean",
        "description": "Hidden images are left out of lists unless asked for (os_hidden=true).",
    },
    "checksum": _read_only(["null", "string"], "MD5 hex digest of the data.", maxLength=32),
    "os_hash_algo": _read_only(
        ["null", "string"], "Algorithm of os_hash_value (sha512).", maxLength=64
    ),
    "os_hash_value": _read_only(
        ["null", "string"], "Secure hash of the data (hex).", maxLength=128
    ),
    "owner": _nullable("string", "The project (here: user name) owning the image.", maxLength=255),
    "size": _read_only(["null", "integer"], "Size of the data in bytes."),
    "virtual_size": _read_only(
        ["null", "integer"], "Virtual size of the disk, found by inspecting the uploaded data."
    ),
    "container_format": {
        "type": ["null", "string"],
        "enum": [None, *ContainerFormat.values],
        "description": "Format of the container around the disk.",
    },
    "disk_format": {
        "type": ["null", "string"],
        "enum": [None, *DiskFormat.values],
        "description": "Format of the disk.",
    },
    "created_at": _read_only("string", "When the image was created (ISO 8601, UTC)."),
    "updated_at": _read_only("string", "When the image last changed (ISO 8601, UTC)."),
    "tags": {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": 255},
        "description": "Strings attached to the image; a set, in no particular order.",
    },
    "direct_url": _read_only(
        "string",
        "The URL of the image's first location; shown only where the operator allows "
        "(IMAGES_SHOW_DIRECT_URL).",
    ),
    "min_ram": {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_INT32,
        "description": "RAM needed to boot, in MiB.",
    },
    "min_disk": {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_INT32,
        "description": "Disk needed to boot, in GiB.",
    },
    # A deprecation schedule (POST .../actions/deprecate), shown when the image has one.
    "deprecation_state": _read_only(
        "string", "Where the image is in its deprecation schedule.", enum=list(DeprecationState)
    ),
    "os_deprecated_at": _read_only(["null", "string"], "Deprecated (listed with a warning) from."),
    "os_obsolete_at": _read_only(["null", "string"], "Obsolete (downloads answer 410) from."),
    "os_delete_at": _read_only(["null", "string"], "Deleted by the scrubber at."),
    "os_replacement_id": _read_only(["null", "string"], "The image to use instead."),
    "os_deprecation_warning": _read_only("string", "Why not to use a deprecated image."),
    "self": _read_only("string", "The image's own path."),
    "file": _read_only("string", "The path of the image's data."),
    "stores": _read_only("string", "Not shown by this registry (single store)."),
    "schema": _read_only("string", "The path of this schema."),
    "locations": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "url": {"type": "string", "maxLength": 255},
                "metadata": {"type": "object"},
                "validation_data": {
                    "description": (
                        "Hashes recorded as the image's own (not checked against the data). "
                        "If the image is not queued, they must equal the image's."
                    ),
                    "type": "object",
                    "writeOnly": True,
                    "additionalProperties": False,
                    "properties": {
                        "checksum": {"type": "string", "minLength": 32, "maxLength": 32},
                        "os_hash_algo": {"type": "string", "maxLength": 64},
                        "os_hash_value": {"type": "string", "maxLength": 128},
                    },
                    "required": ["os_hash_algo", "os_hash_value"],
                },
            },
            "required": ["url", "metadata"],
        },
        "description": (
            "Where the image's data is. Shown, and changed with PATCH, only where the "
            "operator allows (IMAGES_SHOW_MULTIPLE_LOCATIONS)."
        ),
    },
}

# Fields a client may never send (403 "Attribute 'x' is read-only.").
READ_ONLY = frozenset(name for name, spec in IMAGE_PROPERTIES.items() if spec.get("readOnly")) | {
    "locations"
}
# Names no extra property may take (403 "Attribute 'x' is reserved.").
RESERVED = frozenset({"location", "deleted", "deleted_at"})
RESERVED_PREFIX = "os_glance"


def image_schema() -> dict:
    # glanceclient checks disk_format against this enum before sending: the operator's list.
    disk_format = {**IMAGE_PROPERTIES["disk_format"], "enum": [None, *settings.IMAGES_DISK_FORMATS]}
    # Both stay in the schema whatever the switches (glanceclient validates the images
    # it receives against it, as Glance's own schema has them); they say if they are on.
    hidden = " This registry does not show it."
    locations, direct_url = IMAGE_PROPERTIES["locations"], IMAGE_PROPERTIES["direct_url"]
    if not settings.IMAGES_SHOW_MULTIPLE_LOCATIONS:
        locations = {**locations, "description": locations["description"] + hidden}
    if not settings.IMAGES_SHOW_DIRECT_URL:
        direct_url = {**direct_url, "description": direct_url["description"] + hidden}
    return {
        "name": "image",
        "properties": {
            **IMAGE_PROPERTIES,
            "disk_format": disk_format,
            "locations": locations,
            "direct_url": direct_url,
        },
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


def images_schema() -> dict:
    return {
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema()},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    }


MEMBER_PROPERTIES = {
    "created_at": {"type": "string", "description": "When the image was shared."},
    "updated_at": {"type": "string", "description": "When the membership last changed."},
    "image_id": {"type": "string", "pattern": UUID_PATTERN, "description": "The shared image."},
    "member_id": {"type": "string", "description": "The project (user name) it is shared with."},
    "status": {
        "type": "string",
        "enum": list(MemberStatus.values),
        "description": "Whether the member accepted the image.",
    },
    "schema": {"type": "string", "readOnly": True},
}


def member_schema() -> dict:
    return {"name": "member", "properties": MEMBER_PROPERTIES}


def members_schema() -> dict:
    return {
        "name": "members",
        "properties": {
            "members": {"type": "array", "items": member_schema()},
            "schema": {"type": "string"},
        },
        "links": [{"rel": "self", "href": "{self}"}, {"rel": "describedby", "href": "{schema}"}],
    }


# The glance CLI fetches these two at start-up (and falls back to API v1 if the
# image schemas fail). Metadata definitions are not implemented; the schemas say
# so truthfully with an empty shape.
def metadefs_namespace_schema() -> dict:
    return {
        "name": "namespace",
        "description": "Metadata definitions are not supported by this registry.",
        "properties": {"namespace": {"type": "string", "maxLength": 80}},
        "additionalProperties": False,
    }


def metadefs_resource_type_schema() -> dict:
    return {
        "name": "resource_type_association",
        "description": "Metadata definitions are not supported by this registry.",
        "properties": {"name": {"type": "string", "maxLength": 80}},
        "additionalProperties": False,
    }


SCHEMAS = {
    "image": image_schema,
    "images": images_schema,
    "member": member_schema,
    "members": members_schema,
    "metadefs/namespace": metadefs_namespace_schema,
    "metadefs/resource_type": metadefs_resource_type_schema,
}
