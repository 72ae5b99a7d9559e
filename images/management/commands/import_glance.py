import time

from django.core.management.base import BaseCommand, CommandError

from images import services
from images.glance_db import GlanceDatabase, GlanceSourceError
from images.services import DataMode, ImportReport
from images.services.glance_data import GLANCE_RBD_POOL

MiB = 1024 * 1024


class Command(BaseCommand):
    help = (
        "Bring every image of a Glance database over (id, status, metadata, tags, "
        "properties, members, locations); with --copy-data its bytes are copied into "
        "our store and verified, with --adopt-data bytes already inside our store are "
        "used where they lie. Images already here are left alone, so it can run again "
        "and resumes an interrupted run. Exits non-zero if an image was not brought over."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--database-url",
            required=True,
            help="Glance's [database] connection (mysql+pymysql://, postgresql://, sqlite:///)",
        )
        parser.add_argument("--copy-data", action="store_true", help="Copy the bytes, verified.")
        parser.add_argument(
            "--adopt-data",
            action="store_true",
            help="Use bytes that lie inside our store (Glance's datadir as IMAGES_STORE, or "
            "its RBD pool as IMAGES_RBD_POOL) without copying.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only say what would be done.")
        parser.add_argument(
            "--rbd-pool",
            default=GLANCE_RBD_POOL,
            help="Glance's rbd_store_pool, where its legacy rbd://<image> locations are "
            f"[{GLANCE_RBD_POOL}]",
        )

    def handle(self, *args, database_url, copy_data, adopt_data, dry_run, rbd_pool, **options):
        if copy_data and adopt_data:
            raise CommandError("--copy-data and --adopt-data exclude each other: choose one")
        mode = DataMode.COPY if copy_data else DataMode.ADOPT if adopt_data else DataMode.NONE
        try:
            database = GlanceDatabase(database_url)
        except GlanceSourceError as exc:
            raise CommandError(str(exc)) from None
        progress = _Progress(self.stderr) if self.stderr.isatty() else None
        try:
            report = services.glance_import(
                database=database,
                data=mode,
                dry_run=dry_run,
                on_progress=progress,
                rbd_pool=rbd_pool,
            )
        finally:
            database.close()
            if progress is not None:
                progress.end()
        self._report(report, dry_run=dry_run)
        if report.skipped:
            raise CommandError(f"{len(report.skipped)} image(s) not brought over; see above")

    def _report(self, report: ImportReport, *, dry_run: bool) -> None:
        out = self.stdout.write
        verb = "would import" if dry_run else "imported"
        for image_id, note in report.notes:
            out(f"{image_id}: {note}")
        for image_id, why in report.skipped:
            out(f"skipped {image_id}: {why}")
        for image_id in report.changed:
            out(f"{image_id}: changed in Glance since it was imported (not synced again)")
        statuses = ", ".join(f"{s} {n}" for s, n in sorted(report.by_status.items())) or "none"
        counts = report.counts
        out(
            f"{verb} {len(report.imported)} of {report.total} images "
            f"({report.bytes} bytes, {report.bytes / MiB:.1f} MiB): {statuses}"
        )
        out(
            f"members {counts['members']}, tags {counts['tags']}, "
            f"properties {counts['properties']}, locations {counts['locations']}"
        )
        if report.soft_deleted:
            out(
                f"{report.soft_deleted} deleted in Glance: brought over as deleted, without "
                "data; purge_images removes them"
            )
        out(f"already imported {report.already}, skipped {len(report.skipped)}")


class _Progress:
    """One line on a terminal, rewritten: n/total, images/s, MiB/s."""

    def __init__(self, stream):
        self.stream = stream
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, report: ImportReport, done: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and done != report.total:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-6)
        self.stream.write(
            f"\r{done}/{report.total} images, {done / elapsed:.0f} images/s, "
            f"{report.bytes / MiB / elapsed:.1f} MiB/s",
            ending="",
        )
        self.stream.flush()

    def end(self) -> None:
        self.stream.write("")
