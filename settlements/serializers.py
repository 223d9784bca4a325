"""Input validation for /v1/balance_transactions and /v1/payouts: every 4xx names its field."""
from django.conf import settings
from rest_framework import serializers

from gateway.api.fields import MetadataField, StrictCharField, StrictIntegerField, StripeParamsSerializer
from payments.pricing import SUPPORTED_CURRENCIES

from .models import Payout
from .payouts import network_active, network_token
from .selectors import TYPE_KINDS

LIST_PARAMS = ("expand", "limit", "starting_after", "ending_before", "created")


class BalanceTransactionListSerializer(StripeParamsSerializer):
    allowed_extra = LIST_PARAMS + ("currency",)
    type = serializers.ChoiceField(choices=sorted(TYPE_KINDS), required=False)
    source = StrictCharField(required=False, max_length=80)
    payout = StrictCharField(required=False, max_length=80)


class PayoutCryptoSerializer(StripeParamsSerializer):
    network = StrictCharField(max_length=32)
    token_currency = StrictCharField(max_length=16)


class PayoutCreateSerializer(StripeParamsSerializer):
    amount = StrictIntegerField(min_value=1, max_value=settings.GATEWAY_MAX_AMOUNT_MINOR)
    currency = StrictCharField(max_length=3)
    crypto = PayoutCryptoSerializer()
    description = StrictCharField(required=False, allow_blank=True, max_length=1000)
    metadata = MetadataField(required=False)
    statement_descriptor = StrictCharField(required=False, allow_blank=True, max_length=22)

    def validate_currency(self, value):
        value = value.lower()
        if value not in SUPPORTED_CURRENCIES:
            raise serializers.ValidationError(
                f"unsupported currency `{value}`; supported: {', '.join(SUPPORTED_CURRENCIES)}.")
        return value

    def validate(self, data):
        crypto = data["crypto"]
        token = network_token(livemode=self.context["livemode"], network_name=crypto["network"].strip().lower(),
                              token_currency=crypto["token_currency"].strip().lower())
        if token is None:
            field = "token_currency" if network_active(livemode=self.context["livemode"],
                                                       network_name=crypto["network"].strip().lower()) else "network"
            raise serializers.ValidationError({"crypto": {field: [
                f"unknown {field.replace('_', ' ')} `{crypto[field]}` in "
                f"{'live' if self.context['livemode'] else 'test'} mode."]}})
        if token.pegged_currency != data["currency"]:
            raise serializers.ValidationError({"currency": [
                f"{token.currency} on {crypto['network']} is paid out in `{token.pegged_currency or 'none'}`."]})
        data["token"] = token
        return data


class PayoutUpdateSerializer(StripeParamsSerializer):
    metadata = MetadataField(required=False)


class PayoutListSerializer(StripeParamsSerializer):
    allowed_extra = LIST_PARAMS + ("arrival_date", "destination")
    status = serializers.ChoiceField(choices=Payout.Status.choices, required=False)


class EmptySerializer(StripeParamsSerializer):
    pass


class PayoutCancelSerializer(StripeParamsSerializer):
    pass
