from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import generics, status
from rest_framework import serializers as fields
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts import selectors, services
from accounts.api import serializers
from accounts.models import User
from gochat_project.api.caller import caller, caller_id
from gochat_project.api.pagination import ResultsNextPagination


class AuthIpThrottle(AnonRateThrottle):
    """Per-IP throttle on register/login/refresh, whoever is calling."""

    scope = "auth_ip"

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AuthUserThrottle(AuthIpThrottle):
    """Per account, at the same rate: a stolen access token used to guess the password
    from many addresses still gets GOCHAT_THROTTLE_AUTH guesses a minute in all."""

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": "auth_user", "ident": request.user.pk}


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [AuthIpThrottle]

    @extend_schema(request=serializers.RegisterSerializer, responses={201: serializers.UserSerializer})
    def post(self, request: Request) -> Response:
        data = serializers.RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data)
        return Response(serializers.UserSerializer(user).data, status=status.HTTP_201_CREATED)


TOKENS: dict[str, fields.Field] = {"access": fields.CharField(), "refresh": fields.CharField()}


@extend_schema_view(post=extend_schema(responses=inline_serializer("Login", {
    **TOKENS, "user": serializers.UserSerializer()})))
class LoginView(TokenObtainPairView):
    serializer_class = serializers.LoginSerializer
    throttle_classes = [AuthIpThrottle]


@extend_schema_view(post=extend_schema(responses=inline_serializer("TokenPair", TOKENS)))
class RefreshView(TokenRefreshView):
    serializer_class = serializers.RefreshSerializer
    throttle_classes = [AuthIpThrottle]


class LogoutView(APIView):
    @extend_schema(request=serializers.LogoutSerializer, responses={205: None})
    def post(self, request: Request) -> Response:
        data = serializers.LogoutSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            token = RefreshToken(data.validated_data["refresh"])
        except TokenError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        if token.payload.get("user_id") != str(request.user.pk) and token.payload.get("user_id") != request.user.pk:
            return Response({"detail": "Not your token."}, status=status.HTTP_403_FORBIDDEN)
        token.blacklist()
        return Response(status=status.HTTP_205_RESET_CONTENT)


class MeView(APIView):
    @extend_schema(responses=serializers.UserSerializer)
    def get(self, request: Request) -> Response:
        return Response(serializers.UserSerializer(request.user).data)

    @extend_schema(request=serializers.ProfileUpdateSerializer, responses=serializers.UserSerializer)
    def patch(self, request: Request) -> Response:
        data = serializers.ProfileUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_profile_update(user=caller(request), **data.validated_data)
        return Response(serializers.UserSerializer(user).data)


class PasswordChangeView(APIView):
    """A password-guessing surface like login: throttled per IP and per account, and a
    wrong old password is a 400 field error (a 401 would tell clients their token died)."""

    throttle_classes = [AuthIpThrottle, AuthUserThrottle, UserRateThrottle]

    @extend_schema(request=serializers.PasswordChangeSerializer, responses={204: None})
    def post(self, request: Request) -> Response:
        data = serializers.PasswordChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.user_password_change(user=caller(request), **data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserPagination(ResultsNextPagination):
    ordering = "id"
    page_size = 20


@extend_schema_view(get=extend_schema(parameters=[
    OpenApiParameter("search", str, description="in username or nickname, case-insensitive")]))
class UserSearchView(generics.ListAPIView):
    serializer_class = serializers.UserSerializer
    pagination_class = UserPagination

    def get_queryset(self) -> QuerySet[User]:
        return selectors.user_search(query=self.request.query_params.get("search", "")[:64])



class UserDetailView(APIView):
    @extend_schema(responses=serializers.UserDetailSerializer)
    def get(self, request: Request, user_id: int) -> Response:
        user = generics.get_object_or_404(User, pk=user_id)
        # UserDetailSerializer's shape; `online` lives in Redis, not on the model.
        return Response({**serializers.UserSerializer(user).data,
                         "online": selectors.user_is_online(user_id=user.pk), "last_seen": user.last_seen})


class BlockView(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, user_id: int) -> Response:
        generics.get_object_or_404(User, pk=user_id)
        services.user_block(blocker_id=caller_id(request), blocked_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, user_id: int) -> Response:
        services.user_unblock(blocker_id=caller_id(request), blocked_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BlockedListView(generics.ListAPIView):
    serializer_class = serializers.UserSerializer
    pagination_class = UserPagination

    def get_queryset(self) -> QuerySet[User]:
        from accounts.models import Block

        ids = Block.objects.filter(blocker_id=caller_id(self.request)).values("blocked_id")
        return User.objects.filter(pk__in=ids)

