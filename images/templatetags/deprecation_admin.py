"""The admin index's panel of upcoming deprecation steps (images.services.deprecation)."""

from django import template
from django.utils import timezone

from images import selectors

register = template.Library()

# How many of the next steps the panel lists.
UPCOMING_SHOWN = 15


@register.inclusion_tag("admin/images/deprecation_upcoming.html", takes_context=True)
def deprecation_upcoming(context) -> dict:
    request = context.get("request")
    if request is None or not request.user.has_perm("images.view_image"):
        return {"events": None}
    return {"events": selectors.deprecation_upcoming(timezone.now(), limit=UPCOMING_SHOWN)}
