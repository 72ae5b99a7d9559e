import signal
import threading

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
        stop = threading.Event()
        if daemon:
            # SIGTERM (systemd, the soak) and Ctrl-C let the pass under way finish:
            # killed between removing an image's data and marking it deleted, the
            # scrubber would leave that to the next pass.
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
        while True:
            report = services.scrubber_pass()
            self.stdout.write(
                f"scrubbed {len(report.scrubbed)}, failed {len(report.failed)}, "
                f"finished deletes {len(report.swept)}, killed stale uploads "
                f"{len(report.killed)}, removed their leftovers {len(report.leftovers)}, "
                f"undid abandoned imports {len(report.imports_undone)}, "
                f"purged {report.purged}, expired tasks {report.tasks_purged}, "
                f"deprecation steps recorded {len(report.deprecation.recorded)}, "
                f"deleted by schedule {len(report.deprecation.deleted)}"
            )
            for image_id, why in report.deprecation.failed:
                self.stderr.write(f"image {image_id}: scheduled delete refused: {why}")
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
            if stop.wait(settings.IMAGES_SCRUB_WAKEUP_SECONDS):
                return
