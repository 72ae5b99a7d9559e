import sys

from django.core.management.base import BaseCommand, CommandError

from images import services


class Command(BaseCommand):
    help = (
        "Inspect the stored data of existing images as uploads are inspected: record the "
        "format it really is and its virtual size, and report images whose data does not "
        "match their disk_format or fails a safety check. Exits non-zero if it finds any."
    )

    def add_arguments(self, parser):
        parser.add_argument("image_ids", nargs="*", metavar="ID", help="Only these images.")
        parser.add_argument(
            "--new-only", action="store_true", help="Only images never inspected before."
        )

    def handle(self, *args, image_ids=(), new_only=False, **options):
        images = services.images_to_inspect(only_uninspected=new_only)
        if image_ids:
            images = images.filter(pk__in=image_ids)
        total = images.count()
        progress = _Progress(self.stderr, total) if sys.stderr.isatty() else None
        inspected = problems = 0
        for number, image in enumerate(images.iterator(chunk_size=200), start=1):
            check = services.image_inspect(image=image)
            if progress is not None:
                progress.show(number)
            if check is None:
                continue
            inspected += 1
            if not check.ok:
                problems += 1
                self.stdout.write(
                    f"problem: image {image.pk} ({image.disk_format}): {check.problem}"
                )
        if progress is not None:
            progress.done()
        summary = f"{inspected} inspected, {problems} with problems"
        if problems:
            raise CommandError(summary)
        self.stdout.write(summary)


class _Progress:
    """One line on a terminal, redrawn in place."""

    def __init__(self, out, total: int):
        self.out, self.total = out, max(total, 1)

    def show(self, number: int) -> None:
        done = number * 30 // self.total
        self.out.write(f"\r[{'#' * done}{'.' * (30 - done)}] {number}/{self.total}", ending="")
        self.out.flush()

    def done(self) -> None:
        self.out.write("")
