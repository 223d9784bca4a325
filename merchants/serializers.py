"""Input validation for the merchant-side API (webhook endpoints): every 4xx names its field."""
from rest_framework import serializers

from gateway.api.fields import MetadataField, StrictBooleanField, StrictCharField, StrictIntegerField, StripeParamsSerializer
from gateway.ssrf import MAX_URL_LENGTH, UnsafeUrl, url_validate

from .event_types import ALL_EVENTS, EVENT_TYPES


class EnabledEventsField(serializers.ListField):
    """Known event types or `*`, at least one; duplicates dropped, `*` alone when it is given."""

    child = StrictCharField(max_length=100)

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [data]
        names = super().to_internal_value(data)
        if not names:
            raise serializers.ValidationError("give at least one event type, or `*` for all of them.")
        cleaned: list[str] = []
        for index, name in enumerate(names):
            if name != ALL_EVENTS and name not in EVENT_TYPES:
                raise serializers.ValidationError({index: [serializers.ErrorDetail(
                    f"unknown event type `{name}`; use `*` or one of: {', '.join(EVENT_TYPES)}.",
                    code="parameter_invalid",
                )]})
            if name not in cleaned:
                cleaned.append(name)
        return [ALL_EVENTS] if ALL_EVENTS in cleaned else cleaned


class WebhookUrlField(StrictCharField):
    """An http(s) URL the gateway may deliver to (gateway.ssrf); needs `livemode` in the serializer's context."""

    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_URL_LENGTH, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return url_validate(value, livemode=self.context["livemode"])
        except UnsafeUrl as exc:
            raise serializers.ValidationError(exc.message, code="url_invalid") from None


class WebhookEndpointCreateSerializer(StripeParamsSerializer):
    url = WebhookUrlField()
    enabled_events = EnabledEventsField()
    description = StrictCharField(required=False, allow_blank=True, max_length=5000)
    metadata = MetadataField(required=False)


class WebhookEndpointUpdateSerializer(StripeParamsSerializer):
    url = WebhookUrlField(required=False)
    enabled_events = EnabledEventsField(required=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=5000)
    metadata = MetadataField(required=False)
    disabled = StrictBooleanField(required=False)


class WebhookEndpointListSerializer(StripeParamsSerializer):
    allowed_extra = ("expand", "limit", "starting_after", "ending_before", "created")


class WebhookSecretRollSerializer(StripeParamsSerializer):
    """Our extension: how long the current secret keeps signing beside the new one (default one day, at most 7)."""

    previous_secret_expires_in = StrictIntegerField(required=False, min_value=0, max_value=7 * 24 * 3600)
