"""The transition log: every status change of every image, read-only."""

from django.contrib import admin

from images.admin.lists import CappedCountMixin
from images.models import ImageTransition


@admin.register(ImageTransition)
class ImageTransitionAdmin(CappedCountMixin, admin.ModelAdmin):
    """Filter by operation "upload_failed" to see why uploads failed."""

    list_display = ["created_at", "image", "source", "target", "operation", "actor", "reason"]
    list_filter = ["operation", "target"]
    list_select_related = ["image"]
    search_fields = ["actor", "reason"]

    # The log is evidence: rows are written by the services, never by hand.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
