from django.core.management.base import BaseCommand, CommandError

from images import services


class Command(BaseCommand):
    help = (
        "Compare image records with the store: report orphaned bytes, live images whose "
        "bytes are missing and, with --rehash, checksum mismatches. Exits non-zero if "
        "anything is wrong."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rehash", action="store_true", help="Re-read and hash every image.")
        parser.add_argument(
            "--remove-orphans", action="store_true", help="Remove bytes no image owns."
        )

    def handle(self, *args, rehash=False, remove_orphans=False, **options):
        report = services.store_verify(rehash=rehash, remove_orphans=remove_orphans)
        for name in report.orphans:
            removed = " (removed)" if name in report.removed else ""
            self.stdout.write(f"orphan: {name}{removed}")
        for image_id in report.missing:
            self.stdout.write(f"missing: image {image_id} has no data in the store")
        for image_id in report.corrupt:
            self.stdout.write(f"corrupt: image {image_id} does not match its checksum")
        problems = len(report.missing) + len(report.corrupt)
        problems += len(report.orphans) - len(report.removed)
        if problems:
            raise CommandError(
                f"{len(report.orphans)} orphaned, {len(report.missing)} missing, "
                f"{len(report.corrupt)} corrupt"
            )
        self.stdout.write(
            f"store ok: {len(report.removed)} orphans removed" if report.removed else "store ok"
        )
