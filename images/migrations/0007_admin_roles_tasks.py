"""Image administrators hold every permission of the images app: the task records
arrived after migration 0003 gave them out, so they are given again."""

from importlib import import_module

from django.db import migrations

roles = import_module("images.migrations.0003_admin_roles")


class Migration(migrations.Migration):
    dependencies = [("images", "0006_import_tasks")]

    operations = [migrations.RunPython(roles.create_roles, migrations.RunPython.noop)]
