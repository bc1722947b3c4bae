from rest_framework import serializers
from rest_framework_simplejwt.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import USERNAME_PATTERN, User


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "nickname"]


class UserDetailSerializer(UserSerializer):
    online = serializers.BooleanField()

    class Meta(UserSerializer.Meta):
        fields = ["id", "username", "nickname", "online"]


class RegisterSerializer(serializers.Serializer):
    username = serializers.RegexField(USERNAME_PATTERN, max_length=32)
    password = serializers.CharField(max_length=128, trim_whitespace=False)
    nickname = serializers.CharField(max_length=64, required=False, allow_blank=True)


class LoginSerializer(TokenObtainPairSerializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)

    def validate(self, attrs: dict) -> dict:
        data = super().validate(attrs)
        data["user"] = UserSerializer(self.user).data
        return data


class RefreshSerializer(TokenRefreshSerializer):
    """Refresh with rotation; a banned (inactive) user's refresh is refused."""

    refresh = serializers.CharField(max_length=2048)

    def validate(self, attrs: dict) -> dict:
        token = RefreshToken(attrs["refresh"])
        user_id = token.payload.get(api_settings.USER_ID_CLAIM)
        if not User.objects.filter(pk=user_id, is_active=True).exists():
            raise AuthenticationFailed("User is inactive or gone.", code="user_inactive")
        return super().validate(attrs)


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=2048)
