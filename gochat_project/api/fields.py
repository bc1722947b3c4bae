"""Strict JSON fields for request bodies. DRF coerces: 5 becomes the name "5", "7" or
7.0 the id 7, "yes" a boolean. GoChat takes JSON types as they are, as its WebSocket
frames do (messaging.protocol) and its OpenAPI schema says: a string field takes a JSON
string, an integer field a JSON integer (not a boolean), a boolean field a JSON boolean."""

from typing import Any

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictRegexField(serializers.RegexField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data
