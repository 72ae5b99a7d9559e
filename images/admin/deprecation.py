"""The image list's filter by deprecation schedule (images.services.deprecation)."""

from django.contrib import admin
from django.utils import timezone

from images import selectors


class DeprecationFilter(admin.SimpleListFilter):
    """The API's `?deprecation=` states, at the moment the list is shown."""

    title = "deprecation"
    parameter_name = "deprecation"

    def lookups(self, request, model_admin):
        return [
            ("scheduled", "a step still to come"),
            ("deprecated", "deprecated"),
            ("obsolete", "obsolete"),
        ]

    def queryset(self, request, queryset):
        condition = selectors.deprecation_conditions(timezone.now()).get(self.value() or "")
        return queryset if condition is None else queryset.filter(condition)
