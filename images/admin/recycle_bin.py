"""The recycle bin: pending_delete images, the soonest to be scrubbed first, for
recovery staff to bring back before the scrubber removes their data."""

from collections.abc import Iterable

from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from images import policy, selectors
from images.admin import display
from images.admin.lists import FastListMixin, OwnerFilter, OwnerProjectMixin
from images.admin.outcomes import confirmation_page, restore_selected, scrub_images
from images.admin.readonly import ReadOnlyAdminMixin
from images.enums import Status
from images.models import Image, PendingDeleteImage


def scrub_confirmation(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    images: Iterable[Image],
    *,
    action: str | None,
) -> TemplateResponse:
    """Scrubbing cannot be undone, so both the image page's button and the bulk
    action ask first."""
    return confirmation_page(
        request,
        model_admin,
        "admin/images/scrub_confirmation.html",
        title="Scrub images now?",
        images=[(image, selectors.scrub_due_at(image)) for image in images],
        action=action,
    )


@admin.register(PendingDeleteImage)
class RecycleBinAdmin(ReadOnlyAdminMixin, OwnerProjectMixin, FastListMixin, admin.ModelAdmin):
    """Restore one with its row's button, many with the action; superusers can
    scrub now. Read-only otherwise: the image page is where an image is edited."""

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
    actions = [restore_selected, "scrub_selected"]

    def get_queryset(self, request):
        # Soonest scrub first, whether a retention rule or the default delay says when:
        # the annotation comes before the ordering that uses it.
        binned = self.model._default_manager.filter(status=Status.PENDING_DELETE)
        return selectors.with_scrub_due(binned).order_by(*self.get_ordering(request))

    def get_ordering(self, request):
        return ["scrub_due", "id"]

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("images.view_image")

    def has_restore_permission(self, request) -> bool:
        return request.user.has_perm("images.restore_image")

    def has_scrub_permission(self, request) -> bool:
        return policy.can_scrub(request.user)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:images_image_change", args=[object_id]))

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Recycle bin", **(extra_context or {})})

    def get_list_display(self, request):
        shown = list(super().get_list_display(request))
        if not self.has_restore_permission(request):
            shown.remove("restore_button")
        return shown

    @admin.display(description="image", ordering="name")
    def image_link(self, image: Image) -> SafeString:
        url = reverse("admin:images_image_change", args=[image.pk])
        return format_html('<a href="{}">{}</a>', url, image.name or image.pk)

    @admin.display(description="size", ordering="size")
    def size_display(self, image: Image) -> str:
        return display.human_size(image.size)

    @admin.display(description="restores to")
    def restores_to(self, image: Image) -> SafeString:
        return display.status_badge(image.status_before_delete or Status.ACTIVE)

    @admin.display(description="deleted", ordering="deleted_at")
    def deleted(self, image: Image) -> str:
        return display.short_time(image.deleted_at)

    @admin.display(description="scrubbed at", ordering="scrub_due")
    def scrub_at(self, image: Image) -> str:
        return display.short_time(selectors.scrub_due_at(image))

    @admin.display(description="time left")
    def time_left(self, image: Image) -> str:
        return display.time_left(selectors.scrub_due_at(image), prefix="")

    @admin.display(description="")
    def restore_button(self, image: Image) -> SafeString:
        # A button of the list's own form, sent to the transition URL instead, so
        # one restore here is the image page's restore, and comes back here.
        return format_html(
            '<button type="submit" class="button restore-button" formmethod="post" '
            'formaction="{}" name="next" value="{}">Restore</button>',
            reverse("admin:images_image_transition", args=[image.pk, "restore"]),
            reverse("admin:images_pendingdeleteimage_changelist"),
        )

    @admin.action(description="Scrub selected images now…", permissions=["scrub"])
    def scrub_selected(self, request, queryset):
        if request.POST.get("post") == "yes":
            scrub_images(request, queryset)
            return None
        return scrub_confirmation(request, self, list(queryset), action="scrub_selected")
