from django.core.management.base import BaseCommand, CommandError

from images import selectors, services
from images.errors import ImageError

OPERATOR = "operator"


class Command(BaseCommand):
    help = "Restore pending_delete images, with their data, to the status they had."

    def add_arguments(self, parser):
        parser.add_argument("image_ids", nargs="+", metavar="ID")

    def handle(self, *args, image_ids, **options):
        failures = []
        for image_id in image_ids:
            try:
                image = selectors.image_get_visible(
                    OPERATOR, image_id, include_deleted=True, include_scrubbed=True
                )
                image = services.image_restore(image=image, actor=OPERATOR)
            except ImageError as exc:
                failures.append(f"{image_id}: {exc.message}")
                continue
            self.stdout.write(f"{image.pk}: restored, now {image.status}")
        if failures:
            raise CommandError("; ".join(failures))
