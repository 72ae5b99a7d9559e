"""Change lists that stay fast on tables of 100,000+ images."""

import contextlib
import uuid

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Q
from django.utils.functional import cached_property

from images import keystone_accounts
from images.admin import display


class CappedCountPaginator(Paginator):
    """Counts at most `cap` rows. A full COUNT(*) over 100,000+ images on every page
    view is the slowest query of the list; beyond the cap the page says "more than"
    and filters or search narrow it down."""

    cap = 10_000

    @cached_property
    def count(self) -> int:
        counted = self.object_list.order_by()[: self.cap + 1].count()
        return min(counted, self.cap + 1)

    @property
    def truncated(self) -> bool:
        return self.count > self.cap


class OwnerFilter(admin.SimpleListFilter):
    """A text box, not a list of every owner: there may be thousands."""

    title = "owner"
    parameter_name = "owner"
    template = "admin/images/input_filter.html"

    def lookups(self, request, model_admin):
        return ()

    def has_output(self) -> bool:
        return True

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(owner=value.strip()) if value else queryset

    def choices(self, changelist):
        keystone = display.keystone_mode()
        value = (self.value() or "").strip()
        yield {
            "parameter": self.parameter_name,
            "value": self.value() or "",
            # Owners are projects in Keystone mode, usernames otherwise.
            "placeholder": "project id" if keystone else "username",
            "project": keystone_accounts.project_name(value) if keystone else None,
            "clear": changelist.get_query_string(remove=[self.parameter_name]),
            "hidden": [
                (key, value)
                for key, value in changelist.params.items()
                if key != self.parameter_name
            ],
        }


class OwnerProjectMixin:
    """In Keystone mode the owner column names the project beside its id."""

    @admin.display(description="owner", ordering="owner")
    def owner_project(self, image) -> str:
        return display.owner(image.owner)

    def get_list_display(self, request):
        shown = list(super().get_list_display(request))
        if display.keystone_mode():
            shown[shown.index("owner")] = "owner_project"
        return shown


class DataCheckFilter(admin.SimpleListFilter):
    """What format inspection said of the stored data (uploads, inspect_images)."""

    title = "data check"
    parameter_name = "data_check"

    def lookups(self, request, model_admin):
        return [
            ("problem", "Refused by the format rules"),
            ("passed", "Passed"),
            ("unchecked", "Not inspected"),
        ]

    def queryset(self, request, queryset):
        match self.value():
            case "problem":
                return queryset.exclude(data_problem="")
            case "passed":
                return queryset.filter(data_problem="").exclude(data_format="")
            case "unchecked":
                return queryset.filter(data_format="", data_problem="")
        return queryset


class CappedCountMixin:
    """No full count anywhere on the page: not in the paginator, not in "N total",
    not in the filters' facets."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator


class FastListMixin(CappedCountMixin):
    """A list of images (the image list, the recycle bin) and its search box."""

    list_per_page = 50
    search_fields = ["name", "id", "checksum"]  # shows the box; get_search_results decides
    search_help_text = "Name contains the text, or exactly an image id or MD5 checksum."

    def get_search_results(self, request, queryset, search_term):
        """Name contains, or exactly an id or MD5 checksum: the last two use an index."""
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(name__icontains=term) | Q(checksum=term.lower())
        with contextlib.suppress(ValueError):
            match |= Q(pk=uuid.UUID(term))
        return queryset.filter(match), False
