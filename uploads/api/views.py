"""POST /api/uploads stores a file; GET /api/uploads/{id}[/thumbnail] serves it to whoever
may read a message carrying it (uploads.selectors.upload_for_download), else 404."""

from typing import Any

from django.db.models.fields.files import FieldFile
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle, UserRateThrottle
from rest_framework.views import APIView

from gochat_project.api.caller import caller_id
from gochat_project.api.schema import ERROR
from uploads import selectors, services
from uploads.models import Upload


class UploadSerializer(serializers.Serializer):
    """The upload object (docs/protocol.md); documentation only: selectors build the dict."""

    upload_id = serializers.RegexField(r"^[0-9a-f]{32}$")
    url = serializers.CharField()
    name = serializers.CharField()
    size = serializers.IntegerField()
    content_type = serializers.CharField()
    width = serializers.IntegerField(required=False)
    height = serializers.IntegerField(required=False)
    thumbnail_url = serializers.CharField(required=False)


class UploadInput(serializers.Serializer):
    file = serializers.FileField(help_text="The file; its type is read from its bytes, not from the part's header.")


class UploadCreateView(APIView):
    parser_classes = [MultiPartParser]
    throttle_classes = [UserRateThrottle, ScopedRateThrottle]
    throttle_scope = "uploads"

    @extend_schema(request={"multipart/form-data": UploadInput},
                   responses={201: UploadSerializer, 415: OpenApiResponse(ERROR, "not multipart/form-data")})
    def post(self, request: Request) -> Response:
        file = request.FILES.get("file")
        if file is None:
            return Response({"file": ["No file was submitted."]}, status=status.HTTP_400_BAD_REQUEST)
        try:
            upload = services.upload_create(owner_id=caller_id(request), file=file)
        except services.UploadRefused as exc:
            return Response({"detail": exc.detail}, status=exc.status)
        return Response(selectors.upload_public(upload), status=status.HTTP_201_CREATED)


UPLOAD_ID = OpenApiParameter("upload_id", OpenApiTypes.STR, OpenApiParameter.PATH, pattern=r"^[0-9a-f]{32}$")
FILE_BODY = {(200, "*/*"): OpenApiResponse(OpenApiTypes.BINARY, "the file's bytes, typed as sniffed")}


class _Download(APIView):
    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # The answer is the file whatever the Accept header (an <img> asks for image/*).
        return super().perform_content_negotiation(request, force=True)

    def _allowed(self, request: Request, upload_id: str) -> Upload:
        upload = selectors.upload_for_download(user_id=caller_id(request), upload_id=upload_id)
        if upload is None:
            raise NotFound("No such upload.")
        return upload


def _serve(field: FieldFile, *, content_type: str, name: str, inline: bool) -> FileResponse:
    """The stored bytes. Only images are shown inline; every other type is an attachment,
    and nosniff plus a sandboxing CSP keep a browser from running what it holds."""
    response = FileResponse(field.open("rb"), content_type=content_type, as_attachment=not inline, filename=name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


class UploadDownloadView(_Download):
    @extend_schema(parameters=[UPLOAD_ID], responses=FILE_BODY)
    def get(self, request: Request, upload_id: str) -> FileResponse:
        upload = self._allowed(request, upload_id)
        return _serve(upload.file, content_type=upload.content_type, name=upload.name,
                      inline=selectors.is_inline_image(upload))


class UploadThumbnailView(_Download):
    @extend_schema(parameters=[UPLOAD_ID], responses=FILE_BODY)
    def get(self, request: Request, upload_id: str) -> FileResponse:
        upload = self._allowed(request, upload_id)
        if not upload.thumbnail:
            raise NotFound("This upload has no thumbnail.")
        ext = (upload.thumbnail.name or "").rsplit(".", 1)[-1]  # a file that is truthy has a name
        return _serve(upload.thumbnail, content_type="image/png" if ext == "png" else "image/jpeg",
                      name=f"thumbnail.{ext}", inline=True)
