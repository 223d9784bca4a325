"""Input validation of /v1/refunds: every 4xx names its field, before anything is written."""
from django.conf import settings
from rest_framework import serializers

from gateway.api.fields import MetadataField, StrictCharField, StrictIntegerField, StripeParamsSerializer
from gateway.errors import DomainError

from .models import Refund
from .services import destination_address_check


def address_field_check(value: str, *, param: str) -> str:
    try:
        return destination_address_check(value, param=param)
    except DomainError as exc:
        raise serializers.ValidationError(exc.message) from exc


class RefundCryptoSerializer(StripeParamsSerializer):
    destination_address = StrictCharField(required=False, max_length=100)
    unmatched_deposit = StrictCharField(required=False, max_length=40)

    def validate_destination_address(self, value):
        return address_field_check(value, param="crypto[destination_address]")


class RefundCreateSerializer(StripeParamsSerializer):
    charge = StrictCharField(required=False, max_length=40)
    payment_intent = StrictCharField(required=False, max_length=40)
    amount = StrictIntegerField(required=False, min_value=1, max_value=settings.GATEWAY_MAX_AMOUNT_MINOR)
    reason = serializers.ChoiceField(choices=Refund.Reason.choices, required=False)
    metadata = MetadataField(required=False)
    crypto = RefundCryptoSerializer(required=False)

    def validate(self, data):
        crypto = data.get("crypto", {})
        sources = [name for name in ("charge", "payment_intent") if data.get(name)]
        if crypto.get("unmatched_deposit"):
            sources.append("crypto[unmatched_deposit]")
        if not sources:
            raise serializers.ValidationError(
                {"charge": [serializers.ErrorDetail("give one of charge, payment_intent or "
                                                    "crypto[unmatched_deposit].", code="parameter_missing")]})
        if len(sources) > 1:
            raise serializers.ValidationError(
                {sources[1]: ["give only one of charge, payment_intent and crypto[unmatched_deposit]."]})
        if "amount" in data and crypto.get("unmatched_deposit"):
            raise serializers.ValidationError(
                {"amount": ["an unmatched deposit is refunded whole: leave amount out."]})
        return data


class RefundUpdateSerializer(StripeParamsSerializer):
    metadata = MetadataField(required=False)


class RefundListSerializer(StripeParamsSerializer):
    allowed_extra = ("expand", "limit", "starting_after", "ending_before", "created")
    charge = StrictCharField(required=False, max_length=40)
    payment_intent = StrictCharField(required=False, max_length=40)


class RefundCancelSerializer(StripeParamsSerializer):
    pass
