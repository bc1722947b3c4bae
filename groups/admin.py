from django.contrib import admin

from groups.models import Group, GroupMember


class GroupMemberInline(admin.TabularInline):
    model = GroupMember
    raw_id_fields = ("user",)
    fields = ("user", "role", "muted", "joined_seq", "joined_at")
    readonly_fields = ("joined_at",)
    extra = 0
    show_change_link = True


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "member_count", "dissolved", "created_at")
    list_filter = ("dissolved",)
    search_fields = ("name",)
    raw_id_fields = ("owner",)
    inlines = [GroupMemberInline]
