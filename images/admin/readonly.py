"""Admin pages that show records nobody edits by hand."""


class ReadOnlyAdminMixin:
    """No add, change or delete: the rows are written by the services only (history,
    task records, the recycle bin's entries)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
