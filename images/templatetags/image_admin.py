"""The admin front page's summary of the registry, and the admin's way of showing
a time in templates (the same function its Python columns and messages use)."""

from django import template

from images import selectors
from images.admin.display import moment

register = template.Library()

register.filter("moment", moment)


@register.inclusion_tag("admin/images/summary.html", takes_context=True)
def image_summary(context) -> dict:
    request = context.get("request")
    if request is None or not request.user.has_perm("images.view_image"):
        return {"stats": None}
    return {"stats": selectors.image_stats()}
