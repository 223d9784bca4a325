"""Strict input fields for Stripe-style parameters: form values arrive as strings, JSON values keep their types."""
import threading

from django.utils.functional import cached_property
from rest_framework import serializers

from .input import ascii_int


class StrictIntegerField(serializers.Field):
    """Whole numbers only: 1000 or "1000". Never 10.5, "10.0", "1e3", true."""

    default_error_messages = {
        "invalid": "must be an integer.",
        "min_value": "must be at least {min_value}.",
        "max_value": "must be at most {max_value}.",
    }

    def __init__(self, *, min_value=None, max_value=None, **kwargs):
        self.min_value = min_value
        self.max_value = max_value
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        value = data if isinstance(data, int) else ascii_int(data.strip()) if isinstance(data, str) else None
        if value is None:
            self.fail("invalid")
        if self.min_value is not None and value < self.min_value:
            self.fail("min_value", min_value=self.min_value)
        if self.max_value is not None and value > self.max_value:
            self.fail("max_value", max_value=self.max_value)
        return value

    def to_representation(self, value):
        return value


class StrictBooleanField(serializers.Field):
    default_error_messages = {"invalid": "must be a boolean (true or false)."}

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        if isinstance(data, str) and data.lower() in ("true", "false"):
            return data.lower() == "true"
        self.fail("invalid")

    def to_representation(self, value):
        return value


class StrictCharField(serializers.CharField):
    """A string, never a number or an object coerced into one."""

    default_error_messages = {"invalid": "must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StripeParamsSerializer(serializers.Serializer):
    """Refuses parameters it does not know, naming them as Stripe does (`Received unknown parameter: x`)."""

    allowed_extra = ("expand",)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["The request body must be an object."]})
        for key in data:
            if key not in self.fields and key not in self.allowed_extra:
                raise serializers.ValidationError({key: [serializers.ErrorDetail("unknown", code="unknown")]})
        return super().to_internal_value(data)


class ReusedFieldsMixin:
    """For a root serializer on a hot path: its bound fields are built once per class and thread, not per request.

    DRF deep-copies every declared field (nested serializers included) each time a serializer is made: about 0.2 ms
    per POST /v1/payment_intents on this project's machine. The fields hold no per-request state (values and
    errors live on the root serializer), so each instance of the class re-points them at itself when it takes them
    and again when it validates (two instances may be validated in turn). `bind()` cannot be called twice, hence the
    direct assignment. Per thread, since the fields refer to their parent."""

    _reused = threading.local()

    @cached_property
    def fields(self):
        cache = self._reused.__dict__
        fields = cache.get(type(self))
        if fields is None:
            fields = cache[type(self)] = super().fields
        self._point_fields_here(fields)
        return fields

    def _point_fields_here(self, fields) -> None:
        fields.serializer = self
        for field in fields.values():
            field.parent = self

    def is_valid(self, *, raise_exception=False):
        self._point_fields_here(self.fields)
        return super().is_valid(raise_exception=raise_exception)


METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500


class MetadataField(serializers.Field):
    """Stripe's metadata: at most 50 keys of at most 40 characters (no brackets), values of at most 500.
    An empty string for the whole field means "unset every key"; returned as None."""

    default_error_messages = {"invalid": "must be an object of string keys and string values."}

    def to_internal_value(self, data):
        if data == "":
            return None
        if not isinstance(data, dict):
            self.fail("invalid")
        if len(data) > METADATA_MAX_KEYS:
            raise serializers.ValidationError(
                f"an object can have at most {METADATA_MAX_KEYS} metadata keys (got {len(data)}).",
                code="parameter_invalid",
            )
        cleaned = {}
        for key, value in data.items():
            key = str(key)
            if not key or len(key) > METADATA_MAX_KEY_LENGTH or "[" in key or "]" in key:
                raise serializers.ValidationError(
                    {key: [f"metadata keys must be 1 to {METADATA_MAX_KEY_LENGTH} characters without brackets."]}
                )
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise serializers.ValidationError({key: ["metadata values must be strings."]})
            value = str(value)
            if len(value) > METADATA_MAX_VALUE_LENGTH:
                raise serializers.ValidationError(
                    {key: [f"metadata values can be at most {METADATA_MAX_VALUE_LENGTH} characters."]}
                )
            cleaned[key] = value
        return cleaned

    def to_representation(self, value):
        return value
