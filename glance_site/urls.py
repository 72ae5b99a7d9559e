from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from images.api.discovery import VersionsView

admin.site.site_header = "Image registry"
admin.site.site_title = "Image registry"
admin.site.index_title = "Administration"

# One view for both spellings, so the browsable pages' breadcrumbs name it once.
v2_versions = VersionsView.as_view(schema=None, name="Image API v2")

urlpatterns = [
    # Glance's version discovery: 300 at the root (openstacksdk), 200 at /versions
    # (the glance CLI), and 200 at /v2 for clients pointed at the versioned URL.
    path("", VersionsView.as_view(multiple_choices=True, name="Image registry"), name="root"),
    path("versions", VersionsView.as_view(), name="versions"),
    path("v2", v2_versions),
    path("v2/", v2_versions),
    path("v2/", include("images.api.urls")),
    path("api-auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]

# Errors outside the API views (unknown paths, a crash) answer in Glance's error body too.
handler400 = "images.api.errors.bad_request"
handler403 = "images.api.errors.permission_denied"
handler404 = "images.api.errors.page_not_found"
handler500 = "images.api.errors.server_error"
