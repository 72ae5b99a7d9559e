"""The two admin roles, as groups: add people to them in the admin's Users page.

- "Image administrators": every permission on images (browse, edit, delete,
  deactivate, restore, scrub).
- "Recovery staff": see images and restore pending_delete ones; nothing else.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

IMAGE_ADMINISTRATORS = "Image administrators"
RECOVERY_STAFF = "Recovery staff"
RECOVERY_CODENAMES = ["view_image", "restore_image"]


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); a
    # fresh database needs them now to put them into the groups.
    app_config = apps.get_app_config("images")
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = models_module or True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = models_module

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    image_permissions = Permission.objects.filter(content_type__app_label="images")
    administrators, _ = Group.objects.get_or_create(name=IMAGE_ADMINISTRATORS)
    administrators.permissions.set(image_permissions)
    recovery, _ = Group.objects.get_or_create(name=RECOVERY_STAFF)
    recovery.permissions.set(
        image_permissions.filter(content_type__model="image", codename__in=RECOVERY_CODENAMES)
    )


def remove_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.filter(name__in=[IMAGE_ADMINISTRATORS, RECOVERY_STAFF]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("images", "0002_recycle_bin"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
