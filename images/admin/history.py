"""The transition log: every status change of every image, read-only."""

from django.contrib import admin

from images.admin.lists import CappedCountMixin
from images.admin.readonly import ReadOnlyAdminMixin
from images.models import ImageTransition


@admin.register(ImageTransition)
class ImageTransitionAdmin(ReadOnlyAdminMixin, CappedCountMixin, admin.ModelAdmin):
    """Filter by operation "upload_failed" to see why uploads failed. The log is
    evidence: read-only, its rows written by the services, never by hand."""

    list_display = ["created_at", "image", "source", "target", "operation", "actor", "reason"]
    list_filter = ["operation", "target"]
    list_select_related = ["image"]
    search_fields = ["actor", "reason"]
