from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from accounts import services
from accounts.models import User
from gochat_project.admin_tools import EstimatedCountPaginator, ReasonActionForm, log_action


def staff_excluded(*, request: HttpRequest, queryset: QuerySet[Any], user_field: str = "") -> QuerySet[Any]:
    """Rows of `queryset` a moderator may act on: no staff or superuser account (their own
    included), itself or, through `user_field`, as the account a row belongs to; a
    superuser keeps them all."""
    if request.user.is_superuser:
        return queryset
    prefix = f"{user_field}__" if user_field else ""
    # exclude, not filter(...=False): a row whose user row is gone (messages keep a sender id
    # without a constraint) is not a staff account's and stays actionable.
    return queryset.exclude(**{f"{prefix}is_staff": True}).exclude(**{f"{prefix}is_superuser": True})


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Superusers get Django's full UserAdmin. Moderators change a nickname and ban or
    unban ordinary users; passwords, permissions and staff accounts are not theirs."""

    list_display = ("id", "username", "nickname", "is_active", "is_staff", "date_joined")
    list_filter = ("is_active", "is_staff", "date_joined")
    search_fields = ("username", "nickname")
    ordering = ("-id",)
    fieldsets = (*(DjangoUserAdmin.fieldsets or ()), ("GoChat", {"fields": ("nickname",)}))
    moderator_fieldsets = ((None, {"fields": ("username", "nickname", "is_active", "last_login", "date_joined")}),)
    moderator_readonly_fields = ("username", "is_active", "last_login", "date_joined")  # ban/unban are actions
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    action_form = ReasonActionForm
    actions = ["ban", "unban"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return staff_excluded(request=request, queryset=super().get_queryset(request))

    def get_fieldsets(self, request: HttpRequest, obj: User | None = None) -> Any:
        if request.user.is_superuser:
            return super().get_fieldsets(request, obj)
        return self.moderator_fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> Any:
        if request.user.is_superuser:
            return super().get_readonly_fields(request, obj)
        return self.moderator_readonly_fields

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        if not request.user.is_superuser:
            raise PermissionDenied  # a moderator never sets anyone's password
        return super().user_change_password(request, id, form_url)

    @admin.action(description="Ban selected users (deactivate, close their sockets)", permissions=["change"])
    def ban(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = list(staff_excluded(request=request, queryset=queryset)[:1000])
        services.users_ban(user_ids=[u.pk for u in users])
        for user in users:
            log_action(self, request, user, "Banned")

    @admin.action(description="Unban selected users", permissions=["change"])
    def unban(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = list(staff_excluded(request=request, queryset=queryset)[:1000])
        services.users_unban(user_ids=[u.pk for u in users])
        for user in users:
            log_action(self, request, user, "Unbanned")
