from django.contrib import admin

from uploads.models import Upload, UploadAttachment


class AttachmentInline(admin.TabularInline):
    model = UploadAttachment
    extra = 0
    can_delete = False
    readonly_fields = ("conversation_id", "message_id", "seq")


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "name", "content_type", "size", "created_at", "attached_at")
    list_filter = ("content_type",)
    search_fields = ("name",)
    raw_id_fields = ("owner",)
    readonly_fields = ("id", "owner", "file", "name", "size", "content_type", "width", "height", "thumbnail",
                       "created_at", "attached_at")
    inlines = [AttachmentInline]
    ordering = ("-created_at",)
    show_full_result_count = False

    def has_add_permission(self, request: object) -> bool:
        return False  # uploads enter through POST /api/uploads only
