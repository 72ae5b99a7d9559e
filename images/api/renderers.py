"""Rendering: JSON for clients, DRF's browsable pages (branded) for browsers.

Glance ignores ``Accept`` for most purposes, so a client asking for a type we do
not render gets JSON rather than DRF's 406.
"""

from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer


class RegistryBrowsableAPIRenderer(BrowsableAPIRenderer):
    template = "rest_framework/api.html"

    def get_context(self, data, accepted_media_type, renderer_context):
        context = super().get_context(data, accepted_media_type, renderer_context)
        view = renderer_context["view"]
        links = getattr(view, "browsable_links", None)
        context["registry_links"] = links() if callable(links) else []
        return context

    def show_form_for_method(self, view, method, request, obj):
        # DRF offers a form whenever the method exists; the view knows whether this
        # user may use it on this image now.
        offers = getattr(view, "browsable_offers", None)
        shown = super().show_form_for_method(view, method, request, obj)
        return bool(shown) and (offers is None or offers(method))


class OctetStreamRenderer(BaseRenderer):
    """Lets a download that asks for application/octet-stream through negotiation."""

    media_type = "application/octet-stream"
    format = "raw"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else b""


class LenientContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            # An explicit ?format= outranks Accept; an unknown one is still a 404.
            wanted = request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
            if wanted:
                renderers = self.filter_renderers(renderers, wanted)
            return renderers[0], renderers[0].media_type
