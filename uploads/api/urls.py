from django.urls import path, register_converter

from uploads.api import views


class UploadIdConverter:
    """An upload id: 32 lowercase hex digits (anything else is the JSON 404 of /api/)."""

    regex = "[0-9a-f]{32}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(UploadIdConverter, "upload_id")

urlpatterns = [
    path("uploads", views.UploadCreateView.as_view()),
    path("uploads/<upload_id:upload_id>", views.UploadDownloadView.as_view()),
    path("uploads/<upload_id:upload_id>/thumbnail", views.UploadThumbnailView.as_view()),
]
