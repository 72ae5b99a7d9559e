"""Purged images: what `images_purge` kept of each image it removed, with the image's
history. Read-only, like the transition log it continues: the records are written by
the purge, never by hand. Seen by whoever holds `images.view_purgedimage` (admins),
the same right that opens `GET /v2/deleted-images/{id}/history`."""

import contextlib
import uuid
from datetime import datetime

from django.contrib import admin
from django.db.models import Q
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join

from images.admin.lists import CappedCountMixin
from images.admin.readonly import ReadOnlyAdminMixin
from images.history import purged_history
from images.models import PurgedImage


@admin.register(PurgedImage)
class PurgedImageAdmin(ReadOnlyAdminMixin, CappedCountMixin, admin.ModelAdmin):
    list_display = ["image_id", "name", "owner", "size", "deleted_at", "purged_at"]
    list_per_page = 50
    search_fields = ["name", "owner", "image_id"]  # shows the box; get_search_results decides
    search_help_text = "Name contains the text, or exactly an owner or an image id."
    fields = [
        "image_id",
        "name",
        "owner",
        "size",
        "checksum",
        "created_at",
        "deleted_at",
        "purged_at",
        "history_table",
    ]
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        """Name contains, or exactly an owner or an id: the last two use an index."""
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(name__icontains=term) | Q(owner=term)
        with contextlib.suppress(ValueError):
            match |= Q(image_id=uuid.UUID(term))
        return queryset.filter(match), False

    @admin.display(description="history")
    def history_table(self, record: PurgedImage) -> str:
        rows = purged_history(record, marker=None, limit=len(record.history)).rows
        if not rows:
            return "—"
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    # Shown as the admin shows every other time: local, in its format.
                    formats.localize(timezone.localtime(datetime.fromisoformat(r["created_at"]))),
                    r["source"] or "∅",
                    r["target"],
                    r["operation"],
                    r["actor"],
                    r["reason"],
                )
                for r in rows
            ),
        )
        return format_html(
            '<table class="purged-history"><thead><tr><th>when</th><th>from</th><th>to</th>'
            "<th>operation</th><th>by</th><th>reason</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )
