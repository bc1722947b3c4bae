from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import services
from accounts.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("id", "username", "nickname", "is_active", "is_staff", "date_joined")
    list_filter = ("is_active", "is_staff", "date_joined")
    search_fields = ("username", "nickname")
    fieldsets = (*DjangoUserAdmin.fieldsets, ("GoChat", {"fields": ("nickname",)}))
    actions = ["ban", "unban"]

    @admin.action(description="Ban selected users (deactivate, close their sockets)")
    def ban(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        services.users_ban(user_ids=list(queryset.values_list("id", flat=True)))

    @admin.action(description="Unban selected users")
    def unban(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        queryset.update(is_active=True)
