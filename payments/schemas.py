"""Response shapes for the OpenAPI schema only (the JSON itself comes from presenters)."""
from rest_framework import serializers

from gateway.api.schemas import ErrorDetailSchema, ErrorSchema  # noqa: F401  (shared by every app)


class TokenOptionSchema(serializers.Serializer):
    token_currency = serializers.CharField()
    token_contract_address = serializers.CharField()
    decimals = serializers.IntegerField()
    amount = serializers.CharField(help_text="Exact amount due in base units, as a decimal string.")
    payment_uri = serializers.CharField(help_text="EIP-681 URI")


class DepositAddressSchema(serializers.Serializer):
    address = serializers.CharField()
    supported_tokens = TokenOptionSchema(many=True)


class CryptoDisplayDetailsSchema(serializers.Serializer):
    hosted_instructions_url = serializers.URLField()
    expires_at = serializers.IntegerField()
    deposit_addresses = serializers.DictField(child=DepositAddressSchema())


class NextActionSchema(serializers.Serializer):
    type = serializers.CharField()
    crypto_display_details = CryptoDisplayDetailsSchema()


class PaymentIntentSchema(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    amount = serializers.IntegerField()
    amount_received = serializers.IntegerField()
    currency = serializers.CharField()
    status = serializers.CharField()
    client_secret = serializers.CharField(allow_null=True)
    created = serializers.IntegerField()
    expires_at = serializers.IntegerField(allow_null=True)
    livemode = serializers.BooleanField()
    metadata = serializers.DictField(child=serializers.CharField())
    description = serializers.CharField(allow_null=True)
    cancellation_reason = serializers.CharField(allow_null=True)
    canceled_at = serializers.IntegerField(allow_null=True)
    next_action = NextActionSchema(allow_null=True)


class PaymentIntentListSchema(serializers.Serializer):
    object = serializers.CharField()
    url = serializers.CharField()
    has_more = serializers.BooleanField()
    data = PaymentIntentSchema(many=True)
