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

    class Meta(UserSerializer.Meta):
        fields = ["id", "username", "nickname", "online"]


class RegisterSerializer(serializers.Serializer):
    username = StrictRegexField(USERNAME_PATTERN, max_length=32)
    password = StrictCharField(max_length=128, trim_whitespace=False)
    nickname = StrictCharField(max_length=64, required=False, allow_blank=True)


class LoginSerializer(TokenObtainPairSerializer):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # simplejwt sets its own (lenient) username/password fields here
        self.fields[self.username_field] = StrictCharField(max_length=150, write_only=True)
        self.fields["password"] = StrictCharField(max_length=128, trim_whitespace=False, write_only=True)

    def validate(self, attrs: dict) -> dict:
        data = super().validate(attrs)
        data["user"] = UserSerializer(self.user).data
        return data


class RefreshSerializer(TokenRefreshSerializer):
    """Refresh with rotation; a banned (inactive) user's refresh is refused."""

    refresh = StrictCharField(max_length=2048)

    def validate(self, attrs: dict) -> dict:
        token = RefreshToken(attrs["refresh"])
        user_id = token.payload.get(api_settings.USER_ID_CLAIM)
        if not User.objects.filter(pk=user_id, is_active=True).exists():
            raise AuthenticationFailed("User is inactive or gone.", code="user_inactive")
        return super().validate(attrs)


class LogoutSerializer(serializers.Serializer):
    refresh = StrictCharField(max_length=2048)
