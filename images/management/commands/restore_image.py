from django.core.management.base import BaseCommand, CommandError

from images import services
from images.errors import ImageError
from images.models import Image


class Command(BaseCommand):
    help = "Restore pending_delete images, with their data, to the status they had."

    def add_arguments(self, parser):
        parser.add_argument("image_ids", nargs="+", metavar="ID")

    def handle(self, *args, image_ids, **options):
        failures = []
        for image_id in image_ids:
            try:
                image = Image.objects.get(pk=image_id)
                image = services.image_restore(image=image, actor="operator")
            except (Image.DoesNotExist, ValueError, ImageError) as exc:
                reason = getattr(exc, "message", None) or f"No image found with ID {image_id}"
                failures.append(f"{image_id}: {reason}")
                continue
            self.stdout.write(f"{image.pk}: restored, now {image.status}")
        if failures:
            raise CommandError("; ".join(failures))
