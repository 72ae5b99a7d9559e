from django.core.management.base import BaseCommand

from images import services


class Command(BaseCommand):
    help = "Remove deleted image records older than IMAGES_PURGE_AFTER_DAYS, for good."

    def handle(self, *args, **options):
        self.stdout.write(f"purged {services.images_purge()} deleted image records")
