"""How the admin shows an image's pieces: its name in a message, its status, its
size, its times and its owner. Every page that shows one of these calls these
functions, so "time left before the scrub" reads the same on the list, the recycle
bin, the image page, the delete confirmation and the admin index."""

from datetime import datetime

from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timeuntil

from images import keystone_accounts
from images.models import Image


def image_label(image: Image) -> str:
    return f"“{image.name or image.pk}”"


def status_badge(status: str) -> SafeString:
    return format_html('<span class="image-status image-status-{0}">{0}</span>', status)


def human_size(size: int | None) -> str:
    return "—" if size is None else filesizeformat(size)


def short_time(when: datetime | None) -> str:
    return date_format(timezone.localtime(when), "Y-m-d H:i") if when else "—"


def time_left(due: datetime | None, *, none: str = "—", prefix: str = "in ") -> str:
    """'in 23 hours', or 'due now' once the time has passed (the scrubber may not
    have woken up yet). A column headed "time left" drops the `prefix`."""
    if due is None:
        return none
    return f"{prefix}{timeuntil(due)}" if due > timezone.now() else "due now"


def moment(when: datetime | None) -> str:
    """An absolute time and how far away it is: '28 Nov 2026 14:03 UTC (in 23 hours)'."""
    if when is None:
        return "—"
    return f"{date_format(timezone.localtime(when), 'j M Y H:i T')} ({time_left(when)})"


def keystone_mode() -> bool:
    return bool(settings.KEYSTONE_AUTHTOKEN)


def owner(owner_id: str | None) -> str:
    """In Keystone mode an owner is a project id: 'alpha (f0a0…)', with the name Keystone
    gives, or the id alone when it gives none (unknown project, Keystone down)."""
    if not owner_id:
        return "—"
    name = keystone_accounts.project_name(owner_id) if keystone_mode() else None
    return f"{name} ({owner_id})" if name else owner_id
