from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from gochat_project.api.errors import api_not_found
from gochat_project.ops import health
from gochat_project.web import web_asset, web_index

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    # Both pages load their scripts and styles from /static/ (drf-spectacular-sidecar).
    path("api/docs", SpectacularSwaggerView.as_view(url_name="schema")),
    path("api/redoc", SpectacularRedocView.as_view(url_name="schema", template_name="gochat_project/redoc.html")),
    path("api/", include("accounts.api.urls")),
    path("api/", include("messaging.api.urls")),
    path("api/", include("groups.api.urls")),
    path("api/", include("uploads.api.urls")),
    re_path(r"^api/", api_not_found),  # JSON 404 for the rest of /api/
    path("", web_index, name="web-index"),
    path("web/<path:path>", web_asset, name="web-asset"),
]
