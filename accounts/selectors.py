from django.db.models import QuerySet

from accounts.models import User
from gochat_project.infra import redis_client


def user_search(*, query: str) -> QuerySet[User]:
    qs = User.objects.filter(is_active=True).order_by("id")
    if query:
        qs = qs.filter(username__icontains=query) | qs.filter(nickname__icontains=query)
    return qs.order_by("id")


def user_is_online(*, user_id: int) -> bool:
    """Online = a live (unexpired) entry in the online set kept by the gateways."""
    import time

    score = redis_client.client().zscore(redis_client.online_key(), user_id)
    return score is not None and score > time.time()



def users_last_seen(*, user_ids: list[int]) -> dict[int, int | None]:
    """user id -> last_seen (ms or None) of the users that exist, in one query."""
    return dict(User.objects.filter(pk__in=user_ids).values_list("id", "last_seen"))
