from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from accounts.admin import staff_excluded
from gochat_project.admin_tools import EstimatedCountPaginator, ReasonActionForm, log_action
from groups import services
from groups.models import Group, GroupMember, Role


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "member_count", "members_link", "dissolved", "created_at")
    list_filter = ("dissolved",)
    search_fields = ("name",)
    raw_id_fields = ("owner",)
    readonly_fields = ("member_count", "dissolved", "members_link")
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    action_form = ReasonActionForm
    actions = ["dissolve"]

    @admin.display(description="members")
    def members_link(self, obj: Group) -> str:
        # Members are a paginated list of their own: an inline of 100,000 rows would not render.
        url = reverse("admin:groups_groupmember_changelist") + f"?group__id__exact={obj.pk}"
        return format_html('<a href="{}">{} members</a>', url, obj.member_count)

    def get_readonly_fields(self, request: HttpRequest, obj: Group | None = None) -> tuple[str, ...]:
        # Handing a group to another owner is not moderation: only a superuser edits `owner`.
        return self.readonly_fields if request.user.is_superuser else (*self.readonly_fields, "owner")

    @admin.action(description="Dissolve selected groups", permissions=["change"])
    def dissolve(self, request: HttpRequest, queryset: QuerySet[Group]) -> None:
        for group in queryset.filter(dissolved=False)[:500]:
            services.group_dissolve_moderated(group=group)
            log_action(self, request, group, "Dissolved")


@admin.register(GroupMember)
class GroupMemberAdmin(admin.ModelAdmin):
    list_display = ("id", "group", "user", "role", "muted", "joined_seq", "joined_at")
    list_filter = ("role", "muted")
    search_fields = ("user__username",)
    raw_id_fields = ("group", "user")
    list_select_related = ("group", "user")
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    action_form = ReasonActionForm
    actions = ["mute", "unmute", "make_admin", "make_member"]

    def has_change_permission(self, request: HttpRequest, obj: GroupMember | None = None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)  # change through actions

    def _update(self, request: HttpRequest, queryset: QuerySet[GroupMember], what: str, **changes: object) -> None:
        # Never the owner; for a moderator never a staff member either (their own membership
        # included: a moderator does not make itself a group's admin).
        members = staff_excluded(request=request, queryset=queryset.exclude(role=Role.OWNER), user_field="user")
        for member in members[:1000]:
            services.group_member_moderate(member=member, **changes)  # type: ignore[arg-type]
            log_action(self, request, member, what)

    @admin.action(description="Mute selected members", permissions=["change"])
    def mute(self, request: HttpRequest, queryset: QuerySet[GroupMember]) -> None:
        self._update(request, queryset, "Muted", muted=True)

    @admin.action(description="Unmute selected members", permissions=["change"])
    def unmute(self, request: HttpRequest, queryset: QuerySet[GroupMember]) -> None:
        self._update(request, queryset, "Unmuted", muted=False)

    @admin.action(description="Make selected members admins", permissions=["change"])
    def make_admin(self, request: HttpRequest, queryset: QuerySet[GroupMember]) -> None:
        self._update(request, queryset, "Made admin", role=Role.ADMIN)

    @admin.action(description="Make selected members plain members", permissions=["change"])
    def make_member(self, request: HttpRequest, queryset: QuerySet[GroupMember]) -> None:
        self._update(request, queryset, "Made member", role=Role.MEMBER)
