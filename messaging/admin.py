from datetime import UTC, datetime, timedelta

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.admin import staff_excluded
from gochat_project.admin_tools import EstimatedCountPaginator, ReasonActionForm, log_action
from messaging import services
from messaging.conversations import parse_conversation_id
from messaging.models import Message


class SentWithinFilter(admin.SimpleListFilter):
    """Date filter on the indexed `ts` (ms) column."""

    title = "sent"
    parameter_name = "sent_within"
    WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Message]) -> QuerySet[Message]:
        window = self.WINDOWS.get(self.value() or "")
        if window is None:
            return queryset
        since = int((datetime.now(UTC) - window).timestamp() * 1000)
        return queryset.filter(ts__gte=since)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("message_id", "conversation_id", "seq", "sender", "kind", "short_body", "sent_at", "recalled")
    list_filter = ("kind", "recalled", SentWithinFilter)
    search_fields = ("body",)
    search_help_text = ("A conversation id (s_3_17, g_42) or message id finds it exactly; @name finds a sender; "
                        "other text searches message bodies.")
    raw_id_fields = ("sender",)
    readonly_fields = ("message_id", "conversation_id", "seq", "sender", "client_msg_id", "ts", "recalled")
    ordering = ("-message_id",)  # snowflake ids: newest first, on the primary key
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    action_form = ReasonActionForm
    actions = ["recall"]

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Message],
                           search_term: str) -> tuple[QuerySet[Message], bool]:
        term = search_term.strip()
        if parse_conversation_id(term) is not None:
            return queryset.filter(conversation_id=term), False
        if term.isdigit():
            return queryset.filter(message_id=int(term)), False
        if term.startswith("@") and len(term) > 1:
            return queryset.filter(sender__username__iexact=term[1:]), False
        return super().get_search_results(request, queryset, term)

    @admin.display(description="body")
    def short_body(self, obj: Message) -> str:
        return obj.body if len(obj.body) <= 80 else obj.body[:79] + "…"

    @admin.display(description="sent at (UTC)", ordering="ts")
    def sent_at(self, obj: Message) -> str:
        return datetime.fromtimestamp(obj.ts / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")

    @admin.action(description="Recall selected messages (body removed, members notified)", permissions=["change"])
    def recall(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        for message in staff_excluded(request=request, queryset=queryset, user_field="sender")[:500]:
            services.message_recall(message_id=message.message_id, conversation_id=message.conversation_id,
                                    seq=message.seq)
            log_action(self, request, message, "Recalled")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # messages enter through the pipeline only

    def has_change_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        # A moderator recalls (the action) and never rewrites what someone said: the form is view-only.
        if obj is not None and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)
