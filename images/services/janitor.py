"""The scrubber's passes: scrub what is due, kill uploads whose worker died, purge
old `deleted` records, act on deprecation schedules (services/deprecation.py). The
scrubber daemon and `scrub_images` run `scrubber_pass`.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from images import selectors, storage
from images.enums import SCRUBBER, Operation
from images.errors import StoreError
from images.models import Image
from images.services._transitions import _transition
from images.services.data import _discard
from images.services.deletion import _claim, _finish_delete, _scrub_claimed
from images.services.deprecation import DeprecationReport, images_deprecation_due
from images.services.import_worker import (
    imports_reap_stale,
    stages_reap_stale,
    tasks_purge_expired,
)
from images.services.purge_records import purged_records_write

# The package's logger, as before the split, so log lines keep saying images.services.
logger = logging.getLogger(__package__)

# How long after killing an upload the scrubber retries removing what it left.
KILLED_LEFTOVERS_KEPT = timedelta(days=1)

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
    leftovers: list = field(default_factory=list)  # killed uploads' bytes removed late
    purged: int = 0
    tasks_purged: int = 0
    deprecation: DeprecationReport = field(default_factory=DeprecationReport)


def images_scrub_due(*, now=None, report: ScrubReport | None = None) -> ScrubReport:
    """Scrub every pending_delete image past its delay (its retention rule's, else
    IMAGES_SCRUB_DELAY_SECONDS), and finish interrupted deletes.

    Safe on every node at once: each batch is claimed with SELECT ... FOR UPDATE SKIP
    LOCKED among the images no scrubber is at work on, so each image is scrubbed, and
    reported, by one scrubber. A pass visits the due images once, in order, so one
    whose store keeps failing waits for the next pass.
    """
    now = now or timezone.now()
    report = report or ScrubReport()
    # Those past the default delay first, then those whose retention rule has ended.
    for by_rule in (False, True):
        last = None
        while True:
            outcomes: dict = {}
            with transaction.atomic():
                due = selectors.images_due_for_scrub(now, after=last, by_rule=by_rule)
                rows = list(due.select_for_update(skip_locked=True)[:SCRUB_BATCH])
                claimed, claimed_at = _claim(rows, due_by=None, due_at=now, outcomes=outcomes)
            if not rows:
                break
            last = rows[-1]
            _scrub_claimed(claimed, claimed_at, actor=SCRUBBER, outcomes=outcomes)
            _report_batch(rows, outcomes, report)
    for pk in selectors.deleted_images_holding_data(now).values_list("pk", flat=True):
        finished = _finish_delete(pk, now=now)
        if finished is not None:
            (report.swept if finished else report.failed).append(pk)
    return report


def _report_batch(rows: list[Image], outcomes: dict, report: ScrubReport) -> None:
    for fresh in rows:  # the report keeps the due order
        outcome = outcomes.get(fresh.pk)
        if outcome is None:
            report.scrubbed.append(fresh.pk)
        elif isinstance(outcome, StoreError):
            logger.warning("Scrub of image %s did not finish: %s", fresh.pk, outcome)
            report.failed.append(fresh.pk)
        else:  # another scrubber has it, or had it: not ours to report
            logger.info("Scrub of image %s left to another: %s", fresh.pk, outcome)


def images_kill_stale_uploads(*, now=None, report: ScrubReport | None = None) -> ScrubReport:
    """`saving` images whose upload stopped reporting (its worker died) become `killed`.
    Each is claimed with SKIP LOCKED and found stale again under the lock, so of two
    janitors one kills it, and an upload that reported meanwhile is left alone."""
    now = now or timezone.now()
    report = report or ScrubReport()
    stale = selectors.images_with_stale_uploads(now)
    for pk in stale.values_list("pk", flat=True):
        with transaction.atomic():
            fresh = stale.select_for_update(skip_locked=True).filter(pk=pk).first()
            if fresh is None:
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


def images_remove_killed_leftovers(*, now=None, report: ScrubReport | None = None) -> ScrubReport:
    """Bytes a killed upload left under its image's name that could not be removed when
    it was killed: Ceph keeps a crashed writer's watch on its RBD image for a while
    (osd_client_watch_timeout) and refuses the removal meanwhile. Retried for a day
    after the kill; a killed image never has a location, so such bytes are nobody's."""
    now = now or timezone.now()
    report = report or ScrubReport()
    for pk in selectors.images_killed_since(now - KILLED_LEFTOVERS_KEPT).values_list(
        "pk", flat=True
    ):
        name = storage.object_name(pk)
        if not storage.store().exists(name):
            continue
        try:
            storage.delete(name)
        except Exception as exc:
            logger.info("Leftover data %s of killed image %s kept for now: %s", name, pk, exc)
            continue
        report.leftovers.append(pk)
    return report


def images_purge(*, now=None) -> int:
    """Remove `deleted` records older than IMAGES_PURGE_AFTER_DAYS, for good; returns
    how many this call removed (rows another node's purge holds are its to count).
    What happened to each is kept first, in the same transaction (PurgedImage)."""
    now = now or timezone.now()
    with transaction.atomic():
        due = selectors.images_due_for_purge(now).select_for_update(skip_locked=True)
        ids = list(due.values_list("pk", flat=True))
        if not ids:
            return 0
        purged_records_write(ids, now=now)
        _, removed = Image.objects.filter(pk__in=ids).delete()
    return removed.get(Image._meta.label, 0)


def scrubber_pass(*, now=None) -> ScrubReport:
    """One pass of everything the scrubber daemon does."""
    now = now or timezone.now()
    report = images_kill_stale_uploads(now=now)
    images_remove_killed_leftovers(now=now, report=report)
    report.imports_undone = imports_reap_stale(now=now) + stages_reap_stale(now=now)
    report.deprecation = images_deprecation_due(now=now)
    images_scrub_due(now=now, report=report)
    report.purged = images_purge(now=now)
    report.tasks_purged = tasks_purge_expired(now=now)
    return report
