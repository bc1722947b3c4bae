"""Who is calling: the authenticated user of a request, typed for the services.

DRF types `request.user` as `User | AnonymousUser`, so `.pk` reads as `int | None`.
Every view that calls a service runs behind IsAuthenticated (the default permission
class), so the anonymous branch never happens there; if a view ever loses that
permission, the caller gets a 401 instead of a service seeing `user_id=None`.
"""

from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request

from accounts.models import User


def caller(request: Request) -> User:
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user


def caller_id(request: Request) -> int:
    return caller(request).pk
