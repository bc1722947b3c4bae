"""Shared pieces of GoChat's moderation admin."""

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ActionForm
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Model
from django.http import HttpRequest
from django.utils.functional import cached_property


class ReasonActionForm(ActionForm):
    """Lets every moderator action carry a reason, recorded in the admin log."""

    reason = forms.CharField(required=False, max_length=200, label="Reason",
                             widget=forms.TextInput(attrs={"placeholder": "reason (recorded in the log)"}))


def action_reason(request: HttpRequest) -> str:
    return (request.POST.get("reason") or "").strip()[:200] or "no reason given"


def log_action(model_admin: admin.ModelAdmin, request: HttpRequest, obj: Model, what: str) -> None:
    model_admin.log_change(request, obj, f"{what} — reason: {action_reason(request)}")


class EstimatedCountPaginator(Paginator):
    """Never COUNT(*) a huge table on every admin page: an unfiltered list uses
    MySQL's table statistics, a filtered one counts (it is indexed and bounded)."""

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where:
            with connection.cursor() as cursor:
                cursor.execute("SELECT table_rows FROM information_schema.tables "
                               "WHERE table_schema = DATABASE() AND table_name = %s", [query.model._meta.db_table])
                row = cursor.fetchone()
            if row and row[0] and row[0] > 10000:
                return int(row[0])
        return super().count
