import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Make sure an administrator login exists: ADMIN_USERNAME/ADMIN_PASSWORD, or "
        "'admin' with a generated password kept in var/admin_password."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        username = os.environ.get("ADMIN_USERNAME", "admin")
        password = os.environ.get("ADMIN_PASSWORD")
        password_file = Path(settings.VAR_DIR) / "admin_password"
        user = User.objects.filter(username=username).first()
        if user is not None and password is None:
            where = f" (password in {password_file})" if password_file.exists() else ""
            self.stdout.write(f"Sign in at /admin/ as {username!r}{where}.")
            return
        if password is None:
            password = secrets.token_urlsafe(12)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        if user is None:
            User.objects.create_superuser(username=username, password=password, email="")
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
        self.stdout.write(f"Sign in at /admin/ as {username!r} with password {password!r}.")
