"""Admin registration. Read-only until the admin issue adds the screens that
call the domain operations; nothing here may change a status or the store."""

from django.contrib import admin

from images.models import Image, ImageTransition


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Image)
class ImageAdmin(ReadOnlyAdmin):
    list_display = ["name", "status", "owner", "visibility", "size", "created_at"]
    list_filter = ["status", "visibility", "disk_format", "container_format", "protected"]
    search_fields = ["name", "=id", "=checksum"]


@admin.register(ImageTransition)
class ImageTransitionAdmin(ReadOnlyAdmin):
    list_display = ["image", "source", "target", "operation", "actor", "created_at"]
    list_filter = ["operation", "target"]
