"""Routes of the Image API v2 (mounted at /v2/ by glance_site.urls)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from images.api import discovery, history, imports, views

router = SimpleRouter(trailing_slash=False)
router.register("images", views.ImageViewSet, basename="image")
router.register("tasks", imports.TaskViewSet, basename="task")
router.register("deleted-images", history.DeletedImageViewSet, basename="deleted-image")

urlpatterns = [
    *[
        path(f"schemas/{name}", discovery.SchemaView.as_view(name=name), name=f"schema-{name}")
        for name in discovery.schemas.SCHEMAS
    ],
    path("info/import", discovery.InfoImportView.as_view(), name="info-import"),
    path("info/stores", discovery.InfoStoresView.as_view(), name="info-stores"),
    *router.urls,
]
