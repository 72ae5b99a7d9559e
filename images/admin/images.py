"""The image list and the image page: metadata edited through image_update, and
buttons for the transitions, upload, download, delete and scrub, each calling one
function of `images.services` with ``actor=request.user`` (the buttons' own views:
image_actions.py)."""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import (
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe

from images import keystone_accounts, policy, selectors, services
from images.admin import display
from images.admin.charts import status_timeline
from images.admin.deprecation import DeprecationFilter
from images.admin.display import image_label
from images.admin.forms import CHANGE_FIELDSETS, CREATE_FIELDSETS, READ_ONLY, ImageForm
from images.admin.image_actions import ImageActionViews, image_url
from images.admin.imports import ImportFilter, ImportFromUrlMixin, import_page_context
from images.admin.lifecycle import lifecycle_picture
from images.admin.lists import DataCheckFilter, FastListMixin, OwnerFilter, OwnerProjectMixin
from images.admin.outcomes import (
    confirmation_page,
    delete_images,
    report_refusal,
    restore_selected,
    transition_each,
)
from images.admin.transitions import ADMIN_TRANSITIONS, available_transitions
from images.enums import DELETED_STATUSES
from images.errors import ImageError
from images.models import Image
from images.policy import Action


def with_owner_project(fieldsets):
    """The owner's project name on the owner's line (Keystone mode)."""
    return [
        (
            title,
            {
                **options,
                "fields": [
                    ("owner", "project_name") if field == "owner" else field
                    for field in options["fields"]
                ],
            },
        )
        for title, options in fieldsets
    ]


@admin.register(Image)
class ImageAdmin(
    ImageActionViews, OwnerProjectMixin, FastListMixin, ImportFromUrlMixin, admin.ModelAdmin
):
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
        DataCheckFilter,
        ImportFilter,
        OwnerFilter,
        DeprecationFilter,
    ]
    actions = ["deactivate_selected", "reactivate_selected", restore_selected, "delete_selected"]
    change_form_template = "admin/images/image/change_form.html"

    # --- list columns ---

    @admin.display(description="status", ordering="status")
    def status_badge(self, image: Image) -> SafeString:
        return display.status_badge(image.status)

    @admin.display(description="size", ordering="size")
    def size_display(self, image: Image) -> str:
        return display.human_size(image.size)

    @admin.display(description="disk / container", ordering="disk_format")
    def formats(self, image: Image) -> str:
        return f"{image.disk_format or '—'} / {image.container_format or '—'}"

    @admin.display(description="created", ordering="created_at")
    def created(self, image: Image) -> str:
        return display.short_time(image.created_at)

    @admin.display(description="scrubbed", ordering="deleted_at")
    def scrub_time_left(self, image: Image) -> str:
        return display.time_left(selectors.scrub_due_at(image), none="")

    # --- the image page ---

    @admin.display(description="scrub due")
    def scrub_due(self, image: Image) -> str:
        return display.moment(selectors.scrub_due_at(image))

    @admin.display(description="deprecation state")
    def deprecation_state_display(self, image: Image) -> str:
        return services.deprecation_state(image)

    @admin.display(description="project")
    def project_name(self, image: Image) -> str:
        return keystone_accounts.project_name(image.owner) or "—"

    @admin.display(description="locations")
    def locations_display(self, image: Image) -> str:
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
    def extra_properties(self, image: Image) -> str:
        rows = list(image.properties.values_list("name", "value"))
        return format_html_join(mark_safe("<br>"), "{}={}", rows) if rows else "—"

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return CREATE_FIELDSETS
        if display.keystone_mode():
            return with_owner_project(CHANGE_FIELDSETS)
        return CHANGE_FIELDSETS

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        fixed = [*READ_ONLY, "project_name"] if display.keystone_mode() else list(READ_ONLY)
        if obj.status not in services.FORMAT_CHANGE_STATUSES:
            fixed += ["disk_format", "container_format"]  # Glance: only before data exists
        return fixed

    # --- permissions: the Django ones, plus the status ---

    def has_change_permission(self, request, obj=None):
        # For one image, the policy's answer (a deleted image's record is evidence,
        # not something to edit); for the list, the Django permission.
        if obj is not None:
            return Action.EDIT in policy.allowed_actions(request.user, obj)
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None:
            return Action.DELETE in policy.allowed_actions(request.user, obj)
        return super().has_delete_permission(request, obj)

    def has_deactivate_permission(self, request) -> bool:
        return request.user.has_perm("images.deactivate_image")

    def has_restore_permission(self, request) -> bool:
        return request.user.has_perm("images.restore_image")

    # --- saving goes through the services ---

    def save_model(self, request, obj, form, change):
        if change:
            form.update_image(image=obj, actor=request.user)
        else:
            form.create_image(image_id=obj.pk, actor=request.user)

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
        """The page's buttons: exactly what policy.allowed_actions grants now."""
        user = request.user
        url = image_url
        allowed = policy.allowed_actions(user, image)
        history = list(image.transitions.all())
        return {
            "transitions": [
                (t, url(image, "transition", t.name)) for t in available_transitions(user, image)
            ],
            "delete_preview": (
                services.image_delete_preview(image=image, actor=user)
                if Action.DELETE in allowed
                else None
            ),
            "can_scrub": Action.SCRUB in allowed,
            "scrub_url": url(image, "scrub"),
            "download_url": url(image, "download") if Action.DOWNLOAD in allowed else None,
            "upload_url": url(image, "upload") if Action.UPLOAD in allowed else None,
            "lifecycle": lifecycle_picture(image.status),
            "history": history,
            "timeline": status_timeline(history),
            **import_page_context(request, image),
        }

    # --- delete: single and bulk, through image_delete ---

    def delete_view(self, request, object_id, extra_context=None):
        image = self._image_or_404(request, object_id)
        # No button leads here unless the delete is allowed now; a hand-typed URL for
        # a protected image still gets the confirmation page saying why it is refused.
        if not policy.may(request.user, image, Action.DELETE):
            raise PermissionDenied
        if request.method == "POST":
            self.delete_model(request, image)
            image.refresh_from_db()
            if image.status in DELETED_STATUSES:
                return HttpResponseRedirect(reverse("admin:images_image_changelist"))
            return HttpResponseRedirect(image_url(image, "change"))
        return self.delete_confirmation(request, [image], bulk=False)

    def delete_model(self, request, obj):
        delete_images(request, self, [obj])

    def delete_queryset(self, request, queryset):
        delete_images(request, self, list(queryset))

    def delete_confirmation(self, request, images, *, bulk: bool) -> TemplateResponse:
        previews = [services.image_delete_preview(image=i, actor=request.user) for i in images]
        return confirmation_page(
            request,
            self,
            "admin/images/image/delete_confirmation.html",
            title="Delete images?" if bulk else f"Delete {image_label(images[0])}?",
            previews=previews,
            any_allowed=any(p.allowed for p in previews),
            bulk=bulk,
        )

    # --- bulk actions ---

    @admin.action(description="Delete selected images…", permissions=["delete"])
    def delete_selected(self, request, queryset):
        if request.POST.get("post") == "yes":
            self.delete_queryset(request, queryset)
            return None
        return self.delete_confirmation(request, list(queryset), bulk=True)

    @admin.action(description="Deactivate selected images", permissions=["deactivate"])
    def deactivate_selected(self, request, queryset):
        transition_each(request, self, queryset, ADMIN_TRANSITIONS["deactivate"])

    @admin.action(description="Reactivate selected images", permissions=["deactivate"])
    def reactivate_selected(self, request, queryset):
        transition_each(request, self, queryset, ADMIN_TRANSITIONS["reactivate"])
