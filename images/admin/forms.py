"""The image page's form and layout. Metadata is saved through image_create and
image_update, never by the ModelForm, so the domain's checks (formats only before
data exists, quotas, protected) apply in the admin as in the API."""

import uuid

from django import forms

from images import services
from images.models import Image
from images.policy import Actor
from images.services.deprecation import SCHEDULE_FIELDS

CREATE_FIELDSETS = [
    (None, {"fields": ["name", "owner", "visibility", "protected", "os_hidden"]}),
    ("Data", {"fields": ["disk_format", "container_format"]}),
    ("Requirements", {"fields": ["min_disk", "min_ram"]}),
    ("Tags and properties", {"fields": ["tag_list", "extra_properties"]}),
]

CHANGE_FIELDSETS = [
    (None, {"fields": ["name", "status_badge", "owner", "visibility", "protected"]}),
    (
        "Data",
        {
            "fields": [
                "disk_format",
                "container_format",
                "size_display",
                "virtual_size",
                "data_format",
                "data_problem",
                "checksum",
                "os_hash_algo",
                "os_hash_value",
                "locations_display",
            ]
        },
    ),
    ("Requirements", {"fields": ["min_disk", "min_ram", "os_hidden"]}),
    ("Tags and properties", {"fields": ["tag_list", "extra_properties"]}),
    (
        "Deprecation schedule",
        {
            "fields": [*SCHEDULE_FIELDS, "deprecation_state_display"],
            "description": "Deprecated: listed with a warning. Obsolete: downloads refused "
            "(410) except for administrators. Delete: the scrubber deletes it then (it stays "
            "restorable in the recycle bin). Leave all empty for no schedule.",
        },
    ),
    (
        "Record",
        {
            "fields": [
                "id",
                "created_at",
                "updated_at",
                "deleted_at",
                "scrub_due",
                "status_before_delete",
            ]
        },
    ),
]

# Written by the services only: the status by its transitions, the rest by upload.
READ_ONLY = [
    "id",
    "status_badge",
    "size_display",
    "virtual_size",
    "data_format",
    "data_problem",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "locations_display",
    "created_at",
    "updated_at",
    "deleted_at",
    "scrub_due",
    "status_before_delete",
    "deprecation_state_display",
]

# Fields the form shows empty but the service needs a value for: empty means "unchanged".
NOT_NULL = ("min_disk", "min_ram", "visibility", "protected", "os_hidden")


class ImageForm(forms.ModelForm):
    """Tags and extra properties as text boxes, saved with the rest of the metadata."""

    tag_list = forms.CharField(label="Tags", required=False, help_text="Comma-separated.")
    extra_properties = forms.CharField(
        label="Extra properties",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text="One name=value per line.",
    )

    class Meta:
        model = Image
        fields = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance._state.adding:
            return
        if "tag_list" in self.fields:
            self.fields["tag_list"].initial = ", ".join(
                self.instance.tags.values_list("value", flat=True)
            )
        if "extra_properties" in self.fields:
            self.fields["extra_properties"].initial = "\n".join(
                f"{name}={value}"
                for name, value in self.instance.properties.values_list("name", "value")
            )

    def clean_tag_list(self) -> list[str]:
        raw = self.cleaned_data["tag_list"]
        return sorted({tag.strip() for tag in raw.split(",") if tag.strip()})

    def clean_extra_properties(self) -> dict[str, str]:
        properties = {}
        for number, line in enumerate(self.cleaned_data["extra_properties"].splitlines(), 1):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise forms.ValidationError(f"Line {number} is not name=value: {line!r}")
            properties[name.strip()] = value.strip()
        return properties

    def create_image(self, *, image_id: uuid.UUID, actor: Actor) -> Image:
        data = self.cleaned_data
        return services.image_create(
            actor=actor,
            image_id=image_id,
            name=data["name"] or None,
            owner=data["owner"] or None,
            visibility=data["visibility"],
            protected=data["protected"],
            os_hidden=data["os_hidden"],
            disk_format=data["disk_format"] or None,
            container_format=data["container_format"] or None,
            min_disk=data["min_disk"],
            min_ram=data["min_ram"],
            tags=data["tag_list"],
            properties=data["extra_properties"],
        )

    def update_image(self, *, image: Image, actor: Actor) -> Image:
        """Send only what the administrator changed, as image_update's JSON-patch-like
        arguments: changed fields, the new tag list, and properties set or removed."""
        data = self.cleaned_data
        changes = {
            key: data[key] if data[key] != "" else None
            for key in self.changed_data
            if key in services.MUTABLE_FIELDS
        }
        for key in NOT_NULL:
            if key in changes and changes[key] is None:
                changes.pop(key)
        properties, removed = None, []
        if "extra_properties" in self.changed_data:
            old = dict(image.properties.values_list("name", "value"))
            new = data["extra_properties"]
            properties = {name: value for name, value in new.items() if old.get(name) != value}
            removed = sorted(set(old) - set(new))
        image = services.image_update(
            image=image,
            actor=actor,
            changes=changes,
            tags=data["tag_list"] if "tag_list" in self.changed_data else None,
            properties=properties,
            remove_properties=removed,
        )
        if any(key in self.changed_data for key in SCHEDULE_FIELDS):
            # The whole schedule, as the API's action takes it; a refusal rolls the
            # admin's transaction back, metadata changes above included.
            schedule = {key: data.get(key) for key in SCHEDULE_FIELDS}
            image = services.image_deprecate(image=image, actor=actor, **schedule)
        return image
