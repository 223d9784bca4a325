"""Input validation for the PaymentIntent API: every 4xx names its field; services get clean values."""
from django.conf import settings
from rest_framework import serializers

from gateway.api.fields import (
    MetadataField, ReusedFieldsMixin, StrictBooleanField, StrictCharField, StrictIntegerField, StripeParamsSerializer,
)
from wallets.networks import API_NETWORK_NAMES, active_networks

from .models import PaymentIntent
from .pricing import SUPPORTED_CURRENCIES
from .services import MERCHANT_CANCELLATION_REASONS, PaymentIntentInput


class NetworkListField(serializers.ListField):
    child = StrictCharField()

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [data]
        names = super().to_internal_value(data)
        livemode = self.context["livemode"]
        available = active_networks(livemode=livemode)
        seen = []
        for name in names:
            name = name.strip().lower()
            if name not in available:
                known = ", ".join(available) or "none"
                if name in API_NETWORK_NAMES:
                    raise serializers.ValidationError(
                        f"network `{name}` is not available in {'live' if livemode else 'test'} mode "
                        f"(available: {known})."
                    )
                raise serializers.ValidationError(f"unknown network `{name}` (available: {known}).")
            if name not in seen:
                seen.append(name)
        if not seen:
            raise serializers.ValidationError("give at least one network.")
        return seen


class DepositOptionsSerializer(StripeParamsSerializer):
    networks = NetworkListField(required=False)


class CryptoOptionsSerializer(StripeParamsSerializer):
    mode = serializers.ChoiceField(choices=["deposit"], required=False)
    deposit_options = DepositOptionsSerializer(required=False)


class PaymentMethodOptionsSerializer(StripeParamsSerializer):
    crypto = CryptoOptionsSerializer(required=False)


class PaymentMethodDataSerializer(StripeParamsSerializer):
    type = serializers.ChoiceField(choices=["crypto"])


class PaymentIntentCreateSerializer(ReusedFieldsMixin, StripeParamsSerializer):
    amount = StrictIntegerField(min_value=1, max_value=settings.GATEWAY_MAX_AMOUNT_MINOR)
    currency = StrictCharField(max_length=3)
    payment_method_types = serializers.ListField(
        child=serializers.ChoiceField(choices=["crypto"]), required=False, allow_empty=False
    )
    payment_method_data = PaymentMethodDataSerializer(required=False)
    payment_method_options = PaymentMethodOptionsSerializer(required=False)
    confirm = StrictBooleanField(required=False, default=True)
    description = StrictCharField(required=False, allow_blank=True, max_length=1000)
    metadata = MetadataField(required=False)
    receipt_email = serializers.EmailField(required=False, allow_blank=True)
    return_url = serializers.URLField(required=False, allow_blank=True, max_length=2048)

    def validate_currency(self, value):
        value = value.lower()
        if value not in SUPPORTED_CURRENCIES:
            raise serializers.ValidationError(
                f"unsupported currency `{value}`; supported: {', '.join(SUPPORTED_CURRENCIES)}."
            )
        return value

    def to_input(self) -> PaymentIntentInput:
        data = self.validated_data
        crypto = data.get("payment_method_options", {}).get("crypto", {})
        return PaymentIntentInput(
            amount=data["amount"], currency=data["currency"],
            networks=crypto.get("deposit_options", {}).get("networks", []),
            confirm=data["confirm"], description=data.get("description", ""),
            metadata=data.get("metadata") or {}, receipt_email=data.get("receipt_email", ""),
            return_url=data.get("return_url", ""),
        )


class PaymentIntentUpdateSerializer(StripeParamsSerializer):
    description = StrictCharField(required=False, allow_blank=True, max_length=1000)
    metadata = MetadataField(required=False)
    receipt_email = serializers.EmailField(required=False, allow_blank=True)


class PaymentIntentCancelSerializer(StripeParamsSerializer):
    cancellation_reason = serializers.ChoiceField(choices=MERCHANT_CANCELLATION_REASONS, required=False)


class PaymentIntentConfirmSerializer(StripeParamsSerializer):
    payment_method_data = PaymentMethodDataSerializer(required=False)


class PaymentIntentListSerializer(StripeParamsSerializer):
    """List filters other than the pagination ones, which gateway.api.lists checks."""

    allowed_extra = ("expand", "limit", "starting_after", "ending_before", "created")
    status = serializers.ChoiceField(choices=PaymentIntent.Status.choices, required=False)


class RetrieveSerializer(StripeParamsSerializer):
    client_secret = StrictCharField(required=False)
