from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import services
from accounts.models import User
from gochat_project.admin_tools import EstimatedCountPaginator, ReasonActionForm, log_action


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("id", "username", "nickname", "is_active", "is_staff", "date_joined")
    list_filter = ("is_active", "is_staff", "date_joined")
    search_fields = ("username", "nickname")
    ordering = ("-id",)
    fieldsets = (*DjangoUserAdmin.fieldsets, ("GoChat", {"fields": ("nickname",)}))
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    action_form = ReasonActionForm
    actions = ["ban", "unban"]

    @admin.action(description="Ban selected users (deactivate, close their sockets)")
    def ban(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = list(queryset[:1000])
        services.users_ban(user_ids=[u.pk for u in users])
        for user in users:
            log_action(self, request, user, "Banned")

    @admin.action(description="Unban selected users")
    def unban(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = list(queryset[:1000])
        services.users_unban(user_ids=[u.pk for u in users])
        for user in users:
            log_action(self, request, user, "Unbanned")
