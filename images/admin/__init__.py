"""The Django admin, one module per page; importing them registers their
ModelAdmins when Django autodiscovers `images.admin`.

Nothing in the admin writes a status or touches the store: every change calls a
function in `images.services` with ``actor=request.user``, and the domain's
refusals become admin messages in one place, `outcomes.report_refusal`.
"""

from images.admin import history, images, imports, purged, recycle_bin, retention

__all__ = ["history", "images", "imports", "purged", "recycle_bin", "retention"]
