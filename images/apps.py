from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "images"
    verbose_name = "Image registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from images import event_bus

        # oslo.messaging takes a second to import: at start-up, not in the first
        # request that sends an event.
        if event_bus.enabled():
            event_bus._oslo_messaging()
