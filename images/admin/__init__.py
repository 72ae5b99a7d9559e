"""The Django admin: administrators inspect, edit, delete and deactivate images;
recovery staff bring pending_delete images back from the recycle bin.

Nothing here writes a status or touches the store. Every change calls a function
in `images.services` with ``actor=request.user``, and the domain's refusals
(`ImageError`) become admin messages in one place, `report_refusal`.
"""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe

from images import policy, selectors, services
from images.admin.display import (
    human_size,
    image_label,
    moment,
    short_time,
    status_badge,
    time_left,
)
from images.admin.lifecycle import lifecycle_picture
from images.admin.lists import CappedCountMixin, FastListMixin, OwnerFilter
from images.admin.transitions import ADMIN_TRANSITIONS, AdminTransition, available_transitions
from images.enums import DELETED_STATUSES, Status
from images.errors import ImageError
from images.models import Image, ImageTransition, PendingDeleteImage

# --- domain refusals become messages here, and only here ---------------------------


def report_refusal(request: HttpRequest, image: Image | None, verb: str, error: ImageError):
    """The one place a domain refusal becomes something an administrator reads."""
    subject = image_label(image) if image is not None else "The image"
    messages.error(request, f"{subject} was not {verb}: {error.message}")


REFUSED = object()


def attempt(request: HttpRequest, image: Image, verb: str, operation: Callable[[], Any]) -> Any:
    """Run one domain operation; on refusal, say so and return REFUSED."""
    try:
        return operation()
    except ImageError as error:
        report_refusal(request, image, verb, error)
        return REFUSED


def run_each(
    request: HttpRequest, images, verb: str, operation: Callable[[Image], Image]
) -> list[Image]:
    """A bulk action: each image on its own, each refusal reported with its reason."""
    done = []
    for image in images:
        result = attempt(request, image, verb, lambda image=image: operation(image))
        if result is not REFUSED:
            done.append(result)
    return done


# --- the image page's form: metadata goes through image_update --------------------------


class ImageForm(forms.ModelForm):
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


EDITABLE = ["name", "owner", "visibility", "protected", "os_hidden", "min_disk", "min_ram"]
READ_ONLY = [
    "id",
    "status_badge",
    "size_display",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "locations_display",
    "created_at",
    "updated_at",
    "deleted_at",
    "scrub_due",
    "status_before_delete",
]


@admin.register(Image)
class ImageAdmin(FastListMixin, admin.ModelAdmin):
    form = ImageForm
    list_display = [
        "name",
        "status_badge",
        "owner",
        "visibility",
        "size_display",
        "formats",
        "created",
        "scrub_time_left",
    ]
    list_display_links = ["name"]
    list_filter = [
        "status",
        "visibility",
        "disk_format",
        "container_format",
        "protected",
        OwnerFilter,
    ]
    search_fields = ["name", "id", "checksum"]
    search_help_text = "Name contains the text, or exactly an image id or MD5 checksum."
    actions = ["deactivate_selected", "reactivate_selected", "restore_selected", "delete_selected"]
    change_form_template = "admin/images/image/change_form.html"

    # --- list columns ---

    @admin.display(description="status", ordering="status")
    def status_badge(self, image: Image):
        return status_badge(image.status)

    @admin.display(description="size", ordering="size")
    def size_display(self, image: Image) -> str:
        return human_size(image.size)

    @admin.display(description="disk / container", ordering="disk_format")
    def formats(self, image: Image) -> str:
        return f"{image.disk_format or '—'} / {image.container_format or '—'}"

    @admin.display(description="created", ordering="created_at")
    def created(self, image: Image) -> str:
        return short_time(image.created_at)

    @admin.display(description="scrubbed", ordering="deleted_at")
    def scrub_time_left(self, image: Image) -> str:
        return time_left(selectors.scrub_due_at(image), none="")

    # --- the image page ---

    @admin.display(description="scrub due")
    def scrub_due(self, image: Image) -> str:
        return moment(selectors.scrub_due_at(image))

    @admin.display(description="locations")
    def locations_display(self, image: Image):
        rows = [
            (location.url, "store" if location.in_store else "external", location.status)
            for location in image.locations.all()
        ]
        if not rows:
            return "—"
        return format_html_join(mark_safe("<br>"), "{} ({}, {})", rows)

    @admin.display(description="tags")
    def tag_list(self, image: Image) -> str:
        return ", ".join(image.tags.values_list("value", flat=True)) or "—"

    @admin.display(description="extra properties")
    def extra_properties(self, image: Image):
        rows = list(image.properties.values_list("name", "value"))
        return format_html_join(mark_safe("<br>"), "{}={}", rows) if rows else "—"

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [
                (None, {"fields": ["name", "owner", "visibility", "protected", "os_hidden"]}),
                ("Data", {"fields": ["disk_format", "container_format"]}),
                ("Requirements", {"fields": ["min_disk", "min_ram"]}),
                ("Tags and properties", {"fields": ["tag_list", "extra_properties"]}),
            ]
        return [
            (None, {"fields": ["name", "status_badge", "owner", "visibility", "protected"]}),
            (
                "Data",
                {
                    "fields": [
                        "disk_format",
                        "container_format",
                        "size_display",
                        "virtual_size",
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

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        fixed = list(READ_ONLY)
        if obj.status not in services.FORMAT_CHANGE_STATUSES:
            fixed += ["disk_format", "container_format"]  # Glance: only before data exists
        return fixed

    # --- permissions: the Django ones, plus the status ---

    def has_change_permission(self, request, obj=None):
        # A deleted image's record is evidence, not something to edit.
        if obj is not None and obj.status in DELETED_STATUSES:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.status in DELETED_STATUSES:
            return False
        return super().has_delete_permission(request, obj)

    def has_deactivate_permission(self, request) -> bool:
        return request.user.has_perm("images.deactivate_image")

    def has_restore_permission(self, request) -> bool:
        return request.user.has_perm("images.restore_image")

    # --- saving goes through the services ---

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            services.image_create(
                actor=request.user,
                image_id=obj.pk,
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
            return
        changes = {
            key: data[key] if data[key] != "" else None
            for key in form.changed_data
            if key in services.MUTABLE_FIELDS
        }
        for key in ("min_disk", "min_ram", "visibility", "protected", "os_hidden"):
            if key in changes and changes[key] is None:
                changes.pop(key)
        properties, removed = None, []
        if "extra_properties" in form.changed_data:
            old = dict(obj.properties.values_list("name", "value"))
            new = data["extra_properties"]
            properties = {name: value for name, value in new.items() if old.get(name) != value}
            removed = sorted(set(old) - set(new))
        services.image_update(
            image=obj,
            actor=request.user,
            changes=changes,
            tags=data["tag_list"] if "tag_list" in form.changed_data else None,
            properties=properties,
            remove_properties=removed,
        )

    def save_related(self, request, form, formsets, change):
        pass  # tags and properties were saved by the service with the rest

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ImageError as error:
            # Raised by save_model inside the admin's transaction, so nothing was
            # written (not even the admin log entry).
            image = Image(pk=unquote(object_id)) if object_id else None
            report_refusal(request, image, "saved", error)
            return HttpResponseRedirect(request.get_full_path())

    def change_view(self, request, object_id, form_url="", extra_context=None):
        image = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if image is not None and self.has_view_permission(request, image):
            context.update(self.image_page_context(request, image))
        return super().change_view(request, object_id, form_url, context)

    def image_page_context(self, request, image: Image) -> dict:
        user = request.user
        url = self.image_url
        return {
            "transitions": [
                (t, url(image, "transition", t.name)) for t in available_transitions(user, image)
            ],
            "delete_preview": (
                services.image_delete_preview(image=image, actor=user)
                if self.has_delete_permission(request, image)
                else None
            ),
            "can_scrub": image.status == Status.PENDING_DELETE and policy.can_scrub(user),
            "scrub_url": url(image, "scrub"),
            "download_url": (
                url(image, "download")
                if image.status in (Status.ACTIVE, Status.DEACTIVATED)
                else None
            ),
            "upload_url": (
                url(image, "upload")
                if image.status == Status.QUEUED and self.has_change_permission(request, image)
                else None
            ),
            "lifecycle": lifecycle_picture(image.status),
            "history": image.transitions.all(),
        }

    def image_url(self, image: Image, view: str, *args) -> str:
        return reverse(f"admin:images_image_{view}", args=[image.pk, *args])

    # --- extra views: transitions, delete, scrub, download, upload ---

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/transition/<str:name>/",
                view(self.transition_view),
                name="images_image_transition",
            ),
            path("<path:object_id>/scrub/", view(self.scrub_view), name="images_image_scrub"),
            path(
                "<path:object_id>/download/",
                view(self.download_view),
                name="images_image_download",
            ),
            path("<path:object_id>/upload/", view(self.upload_view), name="images_image_upload"),
            *super().get_urls(),
        ]

    def _image_or_404(self, request, object_id) -> Image:
        image = self.get_object(request, unquote(object_id))
        if image is None:
            raise Http404(f"No image with id {object_id}")
        if not self.has_view_permission(request, image):
            raise PermissionDenied
        return image

    def _back(self, request, image: Image) -> HttpResponseRedirect:
        back = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(
            back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            back = self.image_url(image, "change")
        return HttpResponseRedirect(back)

    def transition_view(self, request, object_id, name):
        """POST only. Runs a transition if the user holds its permission and the
        image's current status allows it; otherwise nothing changes."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        transition = ADMIN_TRANSITIONS.get(name)
        if transition is None:
            raise Http404(f"No transition {name!r} in the admin")
        image = self._image_or_404(request, object_id)
        if not request.user.has_perm(transition.permission):
            raise PermissionDenied
        if transition not in available_transitions(request.user, image):
            messages.error(
                request,
                f"{image_label(image)} was not {transition.done}: "
                f"{transition.label.lower()} is not possible while it is {image.status}.",
            )
            return self._back(request, image)
        source = image.status
        result = attempt(request, image, transition.done, lambda: transition.run(request, image))
        if result is not REFUSED:
            self.log_change(request, result, f"{transition.label}: {source} → {result.status}")
            messages.success(
                request, f"{image_label(result)} was {transition.done}; it is now {result.status}."
            )
        return self._back(request, image)

    def scrub_view(self, request, object_id):
        """Remove a pending_delete image's data now, before its time. Superusers only,
        after a confirmation page."""
        image = self._image_or_404(request, object_id)
        if not policy.can_scrub(request.user):
            raise PermissionDenied
        if request.method == "POST":
            done = scrub_images(request, [image])
            if done:
                return HttpResponseRedirect(reverse("admin:images_pendingdeleteimage_changelist"))
            return HttpResponseRedirect(self.image_url(image, "change"))
        return scrub_confirmation(request, self, [image], action=None)

    def download_view(self, request, object_id):
        image = self._image_or_404(request, object_id)
        data = attempt(
            request,
            image,
            "downloaded",
            lambda: services.image_download(image=image, actor=request.user),
        )
        if data is REFUSED:
            return HttpResponseRedirect(self.image_url(image, "change"))
        if data is None:
            messages.warning(request, f"{image_label(image)} has no data ({image.status}).")
            return HttpResponseRedirect(self.image_url(image, "change"))
        if data.external_url:
            return HttpResponseRedirect(data.external_url)
        filename = f"{image.name or image.pk}.{image.disk_format or 'img'}"
        if data.empty:
            response = HttpResponse(b"", content_type="application/octet-stream")
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
        return FileResponse(
            data.open(),
            as_attachment=True,
            filename=filename,
            content_type="application/octet-stream",
        )

    def upload_view(self, request, object_id):
        """Upload data to a queued image. Django spools a large file to a temporary
        file (never to memory) and image_upload streams it into the store."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        image = self._image_or_404(request, object_id)
        if not self.has_change_permission(request, image):
            raise PermissionDenied
        upload = request.FILES.get("data")
        if upload is None:
            messages.error(request, f"{image_label(image)} was not uploaded: choose a file.")
            return HttpResponseRedirect(self.image_url(image, "change"))
        result = attempt(
            request,
            image,
            "uploaded",
            lambda: services.image_upload(
                image=image, actor=request.user, stream=upload, declared_size=upload.size
            ),
        )
        if result is not REFUSED:
            self.log_change(request, result, f"Uploaded {result.size} bytes")
            messages.success(
                request,
                f"{image_label(result)}: {filesizeformat(result.size)} uploaded; "
                f"it is now {result.status} (MD5 {result.checksum}).",
            )
        return HttpResponseRedirect(self.image_url(image, "change"))

    # --- delete: single and bulk, through image_delete ---

    def delete_view(self, request, object_id, extra_context=None):
        image = self._image_or_404(request, object_id)
        if not self.has_delete_permission(request, image):
            raise PermissionDenied
        if request.method == "POST":
            self.delete_model(request, image)
            image.refresh_from_db()
            if image.status in DELETED_STATUSES:
                return HttpResponseRedirect(reverse("admin:images_image_changelist"))
            return HttpResponseRedirect(self.image_url(image, "change"))
        return self.delete_confirmation(request, [image], bulk=False)

    def delete_model(self, request, obj):
        self.delete_images(request, [obj])

    def delete_queryset(self, request, queryset):
        self.delete_images(request, list(queryset))

    def delete_images(self, request, images) -> list[Image]:
        deleted = run_each(
            request,
            images,
            "deleted",
            lambda image: services.image_delete(image=image, actor=request.user),
        )
        for image in deleted:
            self.log_change(request, image, f"Deleted: now {image.status}")
            if image.status == Status.PENDING_DELETE:
                messages.success(
                    request,
                    f"{image_label(image)} is in the recycle bin until "
                    f"{moment(selectors.scrub_due_at(image))}; it can be restored until then.",
                )
            else:
                messages.success(
                    request, f"{image_label(image)} was deleted for good; its data is removed."
                )
        return deleted

    def delete_confirmation(self, request, images, *, bulk: bool) -> TemplateResponse:
        previews = [services.image_delete_preview(image=i, actor=request.user) for i in images]
        context = {
            **self.admin_site.each_context(request),
            "title": "Delete images?" if bulk else f"Delete {image_label(images[0])}?",
            "opts": self.opts,
            "previews": previews,
            "any_allowed": any(p.allowed for p in previews),
            "bulk": bulk,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/images/image/delete_confirmation.html", context)

    # --- bulk actions ---

    @admin.action(description="Delete selected images…", permissions=["delete"])
    def delete_selected(self, request, queryset):
        if request.POST.get("post") == "yes":
            self.delete_queryset(request, queryset)
            return None
        return self.delete_confirmation(request, list(queryset), bulk=True)

    @admin.action(description="Deactivate selected images", permissions=["deactivate"])
    def deactivate_selected(self, request, queryset):
        self._bulk_transition(request, queryset, ADMIN_TRANSITIONS["deactivate"])

    @admin.action(description="Reactivate selected images", permissions=["deactivate"])
    def reactivate_selected(self, request, queryset):
        self._bulk_transition(request, queryset, ADMIN_TRANSITIONS["reactivate"])

    @admin.action(description="Restore selected images", permissions=["restore"])
    def restore_selected(self, request, queryset):
        self._bulk_transition(request, queryset, ADMIN_TRANSITIONS["restore"])

    def _bulk_transition(self, request, queryset, transition: AdminTransition) -> None:
        before = {image.pk: image.status for image in queryset}
        done = run_each(
            request, queryset, transition.done, lambda image: transition.run(request, image)
        )
        changed = [image for image in done if before[image.pk] != image.status]
        for image in done:
            if before[image.pk] == image.status:
                messages.warning(
                    request, f"{image_label(image)} was already {image.status}: nothing to do."
                )
        if changed:
            for image in changed:
                self.log_change(request, image, f"{transition.label}: now {image.status}")
            names = ", ".join(image_label(image) for image in changed)
            messages.success(
                request,
                f"{transition.done.capitalize()} {len(changed)} "
                f"image{'s' if len(changed) != 1 else ''}: {names}.",
            )


def scrub_images(request: HttpRequest, images) -> list[Image]:
    done = run_each(
        request,
        images,
        "scrubbed",
        lambda image: services.image_scrub(image=image, actor=request.user),
    )
    for image in done:
        messages.success(
            request, f"{image_label(image)} was scrubbed: its data is removed for good."
        )
    return done


def scrub_confirmation(request, model_admin, images, *, action: str | None) -> TemplateResponse:
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Scrub images now?",
        "opts": model_admin.opts,
        "images": [(image, selectors.scrub_due_at(image)) for image in images],
        "action": action,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/images/scrub_confirmation.html", context)


# --- the recycle bin ---------------------------------------------------------------


@admin.register(PendingDeleteImage)
class RecycleBinAdmin(FastListMixin, admin.ModelAdmin):
    """pending_delete images, the soonest to be scrubbed first. Restore one with its
    row's button, many with the action; superusers can scrub now."""

    list_display = [
        "image_link",
        "restore_button",
        "time_left",
        "scrub_at",
        "restores_to",
        "owner",
        "size_display",
        "deleted",
    ]
    list_display_links = None
    list_filter = [OwnerFilter]
    search_fields = ["name", "id", "checksum"]
    search_help_text = "Name contains the text, or exactly an image id or MD5 checksum."
    ordering = ["deleted_at", "id"]
    actions = ["restore_selected", "scrub_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=Status.PENDING_DELETE)

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("images.view_image")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_restore_permission(self, request) -> bool:
        return request.user.has_perm("images.restore_image")

    def has_scrub_permission(self, request) -> bool:
        return policy.can_scrub(request.user)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:images_image_change", args=[object_id]))

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Recycle bin", **(extra_context or {})})

    def get_list_display(self, request):
        shown = list(self.list_display)
        if not self.has_restore_permission(request):
            shown.remove("restore_button")
        return shown

    @admin.display(description="image", ordering="name")
    def image_link(self, image: Image):
        url = reverse("admin:images_image_change", args=[image.pk])
        return format_html('<a href="{}">{}</a>', url, image.name or image.pk)

    @admin.display(description="size", ordering="size")
    def size_display(self, image: Image) -> str:
        return human_size(image.size)

    @admin.display(description="restores to")
    def restores_to(self, image: Image):
        return status_badge(image.status_before_delete or Status.ACTIVE)

    @admin.display(description="deleted", ordering="deleted_at")
    def deleted(self, image: Image) -> str:
        return short_time(image.deleted_at)

    @admin.display(description="scrubbed at", ordering="deleted_at")
    def scrub_at(self, image: Image) -> str:
        return short_time(selectors.scrub_due_at(image))

    @admin.display(description="time left")
    def time_left(self, image: Image) -> str:
        return time_left(selectors.scrub_due_at(image), prefix="")

    @admin.display(description="")
    def restore_button(self, image: Image):
        # A button of the list's own form, sent to the transition URL instead.
        return format_html(
            '<button type="submit" class="button restore-button" formmethod="post" '
            'formaction="{}" name="next" value="{}">Restore</button>',
            reverse("admin:images_image_transition", args=[image.pk, "restore"]),
            reverse("admin:images_pendingdeleteimage_changelist"),
        )

    @admin.action(description="Restore selected images", permissions=["restore"])
    def restore_selected(self, request, queryset):
        done = run_each(
            request,
            queryset,
            "restored",
            lambda image: services.image_restore(image=image, actor=request.user),
        )
        for image in done:
            self.log_change(request, image, f"Restore: now {image.status}")
            messages.success(
                request, f"{image_label(image)} was restored; it is now {image.status}."
            )

    @admin.action(description="Scrub selected images now…", permissions=["scrub"])
    def scrub_selected(self, request, queryset):
        if request.POST.get("post") == "yes":
            scrub_images(request, queryset)
            return None
        return scrub_confirmation(request, self, list(queryset), action="scrub_selected")


# --- the transition log ----------------------------------------------------------------


@admin.register(ImageTransition)
class ImageTransitionAdmin(CappedCountMixin, admin.ModelAdmin):
    """Every status change of every image; filter by operation "upload_failed" to
    see why uploads failed."""

    list_display = ["created_at", "image", "source", "target", "operation", "actor", "reason"]
    list_filter = ["operation", "target"]
    list_select_related = ["image"]
    search_fields = ["actor", "reason"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
