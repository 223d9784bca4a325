"""The /v1/payment_intents API. Thin: validate with a serializer, call one service, present the row."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from gateway.api.errors import ResourceMissing
from gateway.api.lists import created_filter, paginate
from gateway.api.views import StripeApiView
from merchants.idempotency import idempotent

from . import selectors, services
from .presenters import payment_intent_json, payment_intent_publishable_json
from .schemas import ErrorSchema, PaymentIntentListSchema, PaymentIntentSchema
from .serializers import (
    PaymentIntentCancelSerializer, PaymentIntentConfirmSerializer, PaymentIntentCreateSerializer,
    PaymentIntentListSerializer, PaymentIntentUpdateSerializer, RetrieveSerializer,
)

ERRORS = {400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema}


class PaymentIntentApiBase(StripeApiView):
    api_resource = "payment_intents"
    path_ids = {"intent_id": ("pi", "payment_intent")}

    def get_intent(self, request, intent_id: str):
        caller = request.auth
        intent = selectors.payment_intent_get(merchant=caller.merchant, livemode=caller.livemode, intent_id=intent_id)
        if intent is None:
            raise ResourceMissing(f"No such payment_intent: '{intent_id}'", param="intent")
        return intent

    def context(self, request) -> services.RequestContext:
        return services.RequestContext(**self.request_context_args(request))


class PaymentIntentListCreateApi(PaymentIntentApiBase):
    @extend_schema(
        operation_id="payment_intents_list", responses={200: PaymentIntentListSchema, **ERRORS},
        parameters=[
            OpenApiParameter("limit", int), OpenApiParameter("starting_after", str),
            OpenApiParameter("ending_before", str), OpenApiParameter("status", str),
            OpenApiParameter("created", int, description="Unix time; also created[gt|gte|lt|lte]"),
        ],
    )
    def get(self, request):
        caller = request.auth
        params = self.query_params(request)
        filters = PaymentIntentListSerializer(data=params)
        filters.is_valid(raise_exception=True)
        qs = selectors.payment_intents_for(merchant=caller.merchant, livemode=caller.livemode)
        qs = qs.filter(created_filter(params))
        if "status" in filters.validated_data:
            qs = qs.filter(status=filters.validated_data["status"])
        return Response(paginate(
            params=params, queryset=qs, serialize=payment_intent_json, url="/v1/payment_intents", id_prefix="pi",
            lookup=lambda pk: selectors.payment_intent_cursor(
                merchant=caller.merchant, livemode=caller.livemode, intent_id=pk
            ),
        ))

    @extend_schema(
        operation_id="payment_intents_create", request=PaymentIntentCreateSerializer,
        responses={200: PaymentIntentSchema, **ERRORS},
    )
    @idempotent
    def post(self, request):
        caller = request.auth
        serializer = PaymentIntentCreateSerializer(data=request.data, context={"livemode": caller.livemode})
        serializer.is_valid(raise_exception=True)
        intent = services.payment_intent_create(
            merchant=caller.merchant, livemode=caller.livemode, data=serializer.to_input(), ctx=self.context(request)
        )
        return Response(payment_intent_json(intent))


class PaymentIntentDetailApi(PaymentIntentApiBase):
    publishable_read = True

    @extend_schema(
        operation_id="payment_intents_retrieve", responses={200: PaymentIntentSchema, **ERRORS},
        parameters=[OpenApiParameter("client_secret", str, description="Required with a publishable key")],
    )
    def get(self, request, intent_id: str):
        caller = request.auth
        params = RetrieveSerializer(data=self.query_params(request))
        params.is_valid(raise_exception=True)
        intent = self.get_intent(request, intent_id)
        if caller.kind == "publishable":
            # A wrong secret looks exactly like an unknown id: no way to learn which intents exist.
            if not selectors.client_secret_matches(intent, params.validated_data.get("client_secret")):
                raise ResourceMissing(f"No such payment_intent: '{intent_id}'", param="intent")
            return Response(payment_intent_publishable_json(intent))
        return Response(payment_intent_json(intent))

    @extend_schema(
        operation_id="payment_intents_update", request=PaymentIntentUpdateSerializer,
        responses={200: PaymentIntentSchema, **ERRORS},
    )
    @idempotent
    def post(self, request, intent_id: str):
        serializer = PaymentIntentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        intent = self.get_intent(request, intent_id)
        metadata = data.get("metadata", {})
        intent = services.payment_intent_update(
            intent=intent, description=data.get("description"), metadata=metadata or {},
            clear_metadata="metadata" in data and metadata is None, receipt_email=data.get("receipt_email"),
        )
        return Response(payment_intent_json(self.get_intent(request, intent.pk)))


class PaymentIntentCancelApi(PaymentIntentApiBase):
    @extend_schema(
        operation_id="payment_intents_cancel", request=PaymentIntentCancelSerializer,
        responses={200: PaymentIntentSchema, **ERRORS},
    )
    @idempotent
    def post(self, request, intent_id: str):
        serializer = PaymentIntentCancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        intent = self.get_intent(request, intent_id)
        intent = services.payment_intent_cancel(
            intent=intent, reason=serializer.validated_data.get("cancellation_reason", ""), ctx=self.context(request)
        )
        return Response(payment_intent_json(self.get_intent(request, intent.pk)))


class PaymentIntentConfirmApi(PaymentIntentApiBase):
    @extend_schema(
        operation_id="payment_intents_confirm", request=PaymentIntentConfirmSerializer,
        responses={200: PaymentIntentSchema, **ERRORS},
    )
    @idempotent
    def post(self, request, intent_id: str):
        serializer = PaymentIntentConfirmSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        intent = self.get_intent(request, intent_id)
        intent = services.payment_intent_confirm(intent=intent, ctx=self.context(request))
        return Response(payment_intent_json(self.get_intent(request, intent.pk)))
