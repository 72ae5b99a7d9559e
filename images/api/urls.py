"""Routes of the Image API v2 (mounted at /v2/ by glance_site.urls)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from images.api import views

router = SimpleRouter(trailing_slash=False)
router.register("images", views.ImageViewSet, basename="image")

urlpatterns = [
    *[
        path(f"schemas/{name}", views.SchemaView.as_view(name=name), name=f"schema-{name}")
        for name in views.schemas.SCHEMAS
    ],
    path("info/import", views.InfoImportView.as_view(), name="info-import"),
    path("info/stores", views.InfoStoresView.as_view(), name="info-stores"),
    *router.urls,
]
