from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Print an API token for a user (send it as X-Auth-Token or 'Authorization: Token')."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--create", action="store_true", help="Create the user if missing.")
        parser.add_argument("--staff", action="store_true", help="Make the user staff.")

    def handle(self, *args, username, create=False, staff=False, **options):
        User = get_user_model()
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist:
            if not create:
                raise CommandError(f"No user {username!r}; pass --create to make one") from None
            user = User.objects.create_user(username=username)
        if staff and not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
