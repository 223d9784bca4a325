"""/v1/charges (what arrived on-chain) and the test helper that really sends a deposit on the test chain."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from gateway.api.errors import InvalidRequest, ResourceMissing
from gateway.api.fields import StrictCharField, StrictIntegerField, StripeParamsSerializer
from gateway.api.lists import created_filter, paginate
from gateway.api.views import StripeApiView
from gateway.ratelimit import HelperRateThrottle
from merchants.idempotency import idempotent
from wallets.faucet import faucet_send
from wallets.networks import active_networks

from . import selectors
from .presenters import charge_json, payment_intent_json
from .schemas import ErrorSchema

ERRORS = {400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema}


class ChargeListSerializer(StripeParamsSerializer):
    allowed_extra = ("expand", "limit", "starting_after", "ending_before", "created")
    payment_intent = StrictCharField(required=False, max_length=40)


class ChargeListApi(StripeApiView):
    api_resource = "charges"

    @extend_schema(operation_id="charges_list", responses={200: dict, **ERRORS}, parameters=[
        OpenApiParameter("payment_intent", str), OpenApiParameter("limit", int),
        OpenApiParameter("starting_after", str), OpenApiParameter("ending_before", str),
    ])
    def get(self, request):
        caller = request.auth
        params = self.query_params(request)
        filters = ChargeListSerializer(data=params)
        filters.is_valid(raise_exception=True)
        qs = selectors.charges_for(merchant=caller.merchant, livemode=caller.livemode).filter(created_filter(params))
        if "payment_intent" in filters.validated_data:
            qs = qs.filter(payment_intent_id=filters.validated_data["payment_intent"])
        heads = selectors.network_heads()
        return Response(paginate(
            params=params, queryset=qs, url="/v1/charges", id_prefix="ch",
            serialize=lambda c: charge_json(c, head_number=heads.get(c.transfer.network_id)),
            lookup=lambda pk: selectors.charge_cursor(merchant=caller.merchant, livemode=caller.livemode, charge_id=pk),
        ))


class ChargeDetailApi(StripeApiView):
    api_resource = "charges"
    path_ids = {"charge_id": ("ch", "charge")}

    @extend_schema(operation_id="charges_retrieve", responses={200: dict, **ERRORS})
    def get(self, request, charge_id: str):
        caller = request.auth
        charge = selectors.charges_for(merchant=caller.merchant, livemode=caller.livemode).filter(pk=charge_id).first()
        if charge is None:
            raise ResourceMissing(f"No such charge: '{charge_id}'", param="id")
        return Response(charge_json(charge, head_number=selectors.network_heads().get(charge.transfer.network_id)))


class SimulateDepositSerializer(StripeParamsSerializer):
    network = StrictCharField()
    token_currency = StrictCharField()
    amount = StrictIntegerField(required=False, min_value=1, max_value=2**256 - 1)


class SimulateCryptoDepositApi(StripeApiView):
    api_resource = "payment_intents"
    # Each call sends a real transaction from the shared test faucet: a lower limit of its own (per key).
    throttle_classes = [HelperRateThrottle]
    path_ids = {"intent_id": ("pi", "payment_intent")}

    @extend_schema(operation_id="test_helpers_simulate_crypto_deposit", request=SimulateDepositSerializer,
                   responses={200: dict, **ERRORS})
    @idempotent
    def post(self, request, intent_id: str):
        caller = request.auth
        if caller.livemode:
            raise InvalidRequest("Test helpers can only be used with a test-mode key.", code="livemode_mismatch")
        serializer = SimulateDepositSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        intent = selectors.payment_intent_get(merchant=caller.merchant, livemode=False, intent_id=intent_id)
        if intent is None:
            raise ResourceMissing(f"No such payment_intent: '{intent_id}'", param="intent")
        if intent.deposit_address_id is None:
            raise InvalidRequest("This PaymentIntent has no deposit address yet: confirm it first.",
                                 code="payment_intent_unexpected_state")
        network = active_networks(livemode=False).get(data["network"].lower())
        if network is None:
            raise InvalidRequest(f"Unknown test network `{data['network']}`.", param="network")
        token = next((t for t in network.tokens if t.currency == data["token_currency"].lower()), None)
        if token is None and data["token_currency"].lower() != network.network.native_currency:
            raise InvalidRequest(f"No token `{data['token_currency']}` on {data['network']}.", param="token_currency")
        amount = data.get("amount")
        option = next((o for o in intent.options.all() if token and o.token_id == token.id), None)
        if amount is None:
            if option is None:
                raise InvalidRequest("Give `amount` (base units): this token is not one the intent asks for.",
                                     param="amount")
            amount = option.amount_base_units
        # A test faucet is a shared, finite account: at most ten times what the intent asks for (or, for a token it
        # does not ask for, ten times its largest amount due).
        ceiling = 10 * max([option.amount_base_units] if option else
                           [o.amount_base_units for o in intent.options.all()] or [0])
        if amount > ceiling:
            raise InvalidRequest(f"`amount` may be at most {ceiling} base units for this PaymentIntent.",
                                 param="amount")
        tx_hash = faucet_send(network=network.network, token=token, to_address=intent.deposit_address.address,
                              amount_base_units=amount)
        body = payment_intent_json(intent)
        body["test_helper"] = {"transaction_hash": tx_hash, "amount": str(amount)}
        return Response(body)
