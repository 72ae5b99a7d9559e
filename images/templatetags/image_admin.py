"""The admin front page's summary of the registry."""

from django import template
from django.utils import timezone
from django.utils.timesince import timeuntil

from images import selectors

register = template.Library()


@register.inclusion_tag("admin/images/summary.html", takes_context=True)
def image_summary(context) -> dict:
    request = context.get("request")
    if request is None or not request.user.has_perm("images.view_image"):
        return {"stats": None}
    stats = selectors.image_stats()
    due = stats.next_scrub_at
    left = "due now" if due and due <= timezone.now() else f"in {timeuntil(due)}" if due else ""
    return {"stats": stats, "next_scrub_left": left}
