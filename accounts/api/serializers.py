from typing import Any

from django.db import transaction
from rest_framework import serializers
from rest_framework_simplejwt.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import USERNAME_PATTERN, User
from gochat_project.api.fields import StrictCharField, StrictRegexField


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "nickname"]


class UserDetailSerializer(UserSerializer):
    online = serializers.BooleanField()
    last_seen = serializers.IntegerField(allow_null=True, help_text="ms: when the user's last device went away")

    class Meta(UserSerializer.Meta):
        fields = ["id", "username", "nickname", "online", "last_seen"]


def password_field(*, write_only: bool = False) -> StrictCharField:
    """A password as sent: any string up to 128 characters, spaces kept."""
    return StrictCharField(max_length=128, trim_whitespace=False, write_only=write_only)


def nickname_field() -> StrictCharField:
    """Up to 64 characters (users.nickname), optional; blank means "show my username"."""
    return StrictCharField(max_length=64, required=False, allow_blank=True)


class RegisterSerializer(serializers.Serializer):
    username = StrictRegexField(USERNAME_PATTERN, max_length=32)
    password = password_field()
    nickname = nickname_field()


class ProfileUpdateSerializer(serializers.Serializer):
    """PATCH semantics, as the OpenAPI schema states them: an absent field is left as is."""

    nickname = nickname_field()


class PasswordChangeSerializer(serializers.Serializer):
    old_password = password_field()
    new_password = password_field()


class LoginSerializer(TokenObtainPairSerializer):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # simplejwt sets its own (lenient) username/password fields here
        self.fields[self.username_field] = StrictCharField(max_length=150, write_only=True)
        self.fields["password"] = password_field(write_only=True)

    def validate(self, attrs: dict) -> dict:
        data: dict[str, Any] = super().validate(attrs)  # simplejwt says dict[str, str]; "user" is a dict
        data["user"] = UserSerializer(self.user).data
        return data


class RefreshSerializer(TokenRefreshSerializer):
    """Refresh with rotation; a banned (inactive) user's refresh is refused."""

    refresh = StrictCharField(max_length=2048)

    def validate(self, attrs: dict) -> dict:
        token = RefreshToken(attrs["refresh"])
        user_id = token.payload.get(api_settings.USER_ID_CLAIM)
        with transaction.atomic():
            # The user's row lock, as a password change takes it (accounts.services.
            # user_password_change): the rotation then cannot slip a new token past its
            # revocation. super() checks the blacklist again under the lock.
            active = User.objects.select_for_update().filter(is_active=True)
            if user_id is None or not list(active.filter(pk=user_id).values_list("pk")):
                raise AuthenticationFailed("User is inactive or gone.", code="user_inactive")
            return super().validate(attrs)


class LogoutSerializer(serializers.Serializer):
    refresh = StrictCharField(max_length=2048)
