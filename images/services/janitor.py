"""The scrubber's passes: scrub what is due, kill uploads whose worker died, purge
old `deleted` records. The scrubber daemon and `scrub_images` run `scrubber_pass`.
"""

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from images import selectors, storage
from images.enums import SCRUBBER, Operation
from images.models import Image
from images.services._transitions import _lock, _transition
from images.services.data import _discard
from images.services.deletion import _remove_location_data, _scrub_batch
from images.services.import_worker import (
    imports_reap_stale,
    stages_reap_stale,
    tasks_purge_expired,
)

# The package's logger, as before the split, so log lines keep saying images.services.
logger = logging.getLogger(__package__)

# Images the scrubber handles together: one claim, one data pass and one commit of
# their transitions per batch, instead of two transactions and ~10 queries each.
SCRUB_BATCH = 200


@dataclass
class ScrubReport:
    scrubbed: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    swept: list = field(default_factory=list)
    killed: list = field(default_factory=list)
    imports_undone: list = field(default_factory=list)  # images whose import's worker died
    purged: int = 0
    tasks_purged: int = 0


def images_scrub_due(*, now=None, report: ScrubReport | None = None) -> ScrubReport:
    """Scrub every pending_delete image past its delay, and finish interrupted deletes."""
    now = now or timezone.now()
    report = report or ScrubReport()
    due_by = selectors.scrub_cutoff(now)

    def scrub(batch: list) -> None:
        outcomes = _scrub_batch(batch, actor=SCRUBBER, due_by=due_by)
        for pk in batch:  # the report keeps the due order
            if pk not in outcomes:
                continue
            if outcomes[pk] is None:
                report.scrubbed.append(pk)
            else:
                logger.warning("Scrub of image %s did not finish: %s", pk, outcomes[pk])
                report.failed.append(pk)

    batch: list = []
    due = selectors.images_due_for_scrub(now).values_list("pk", flat=True)
    for pk in due.iterator(chunk_size=SCRUB_BATCH):
        batch.append(pk)
        if len(batch) == SCRUB_BATCH:
            scrub(batch)
            batch = []
    if batch:
        scrub(batch)
    for image in selectors.deleted_images_holding_data():
        if _remove_location_data(image):
            report.swept.append(image.pk)
        else:
            report.failed.append(image.pk)
    return report


def images_kill_stale_uploads(*, now=None, report: ScrubReport | None = None) -> ScrubReport:
    """`saving` images whose upload stopped reporting (its worker died) become `killed`."""
    now = now or timezone.now()
    report = report or ScrubReport()
    for image in selectors.images_with_stale_uploads(now):
        with transaction.atomic():
            fresh = _lock(image.pk)
            if not selectors.images_with_stale_uploads(now).filter(pk=fresh.pk).exists():
                continue
            _transition(
                fresh,
                "kill",
                operation=Operation.KILL,
                actor="scrubber",
                reason=(
                    f"no upload progress for {settings.IMAGES_UPLOAD_STALE_SECONDS} seconds; "
                    "the worker receiving it is gone"
                ),
            )
        storage.delete_partial(fresh.pk)
        # A worker that died after renaming its bytes into place, before recording
        # them, left the whole object under the final name. A killed image never has a
        # location, so those bytes are nobody's.
        _discard(storage.object_name(fresh.pk))
        report.killed.append(fresh.pk)
    return report


def images_purge(*, now=None) -> int:
    """Remove `deleted` records older than IMAGES_PURGE_AFTER_DAYS, for good."""
    now = now or timezone.now()
    ids = list(selectors.images_due_for_purge(now).values_list("pk", flat=True))
    if ids:
        Image.objects.filter(pk__in=ids).delete()
    return len(ids)


def scrubber_pass(*, now=None) -> ScrubReport:
    """One pass of everything the scrubber daemon does."""
    now = now or timezone.now()
    report = images_kill_stale_uploads(now=now)
    report.imports_undone = imports_reap_stale(now=now) + stages_reap_stale(now=now)
    images_scrub_due(now=now, report=report)
    report.purged = images_purge(now=now)
    report.tasks_purged = tasks_purge_expired(now=now)
    return report
