from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "images"
    verbose_name = "Image registry"
    default_auto_field = "django.db.models.BigAutoField"
