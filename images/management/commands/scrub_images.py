import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from images import services


class Command(BaseCommand):
    help = (
        "Run the scrubber: kill stale uploads, remove the data of pending_delete images "
        "past IMAGES_SCRUB_DELAY_SECONDS, and purge old deleted records."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--daemon",
            action="store_true",
            help="Repeat every IMAGES_SCRUB_WAKEUP_SECONDS until stopped.",
        )

    def handle(self, *args, daemon=False, **options):
        while True:
            report = services.scrubber_pass()
            self.stdout.write(
                f"scrubbed {len(report.scrubbed)}, failed {len(report.failed)}, "
                f"finished deletes {len(report.swept)}, killed stale uploads "
                f"{len(report.killed)}, purged {report.purged}"
            )
            for image_id in report.failed:
                self.stderr.write(f"image {image_id}: data removal failed; will retry")
            if not daemon:
                if report.failed:
                    # A cron run's exit status is what monitoring sees.
                    raise CommandError(
                        f"{len(report.failed)} image(s) could not be scrubbed; they stay "
                        "pending_delete and the next run retries"
                    )
                return
            self.stdout.flush()
            time.sleep(settings.IMAGES_SCRUB_WAKEUP_SECONDS)
