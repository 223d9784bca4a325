"""/v1/webhook_endpoints (Stripe-compatible) and our `roll_secret` extension. Thin: validate with a serializer,
call one service, present the row."""
from datetime import timedelta

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from gateway.api.errors import ResourceMissing
from gateway.api.lists import created_filter, paginate
from gateway.api.schemas import ERRORS
from gateway.api.views import StripeApiView

from . import selectors, services
from .idempotency import idempotent
from .presenters import webhook_endpoint_deleted_json, webhook_endpoint_json
from .serializers import (
    WebhookEndpointCreateSerializer, WebhookEndpointListSerializer, WebhookEndpointUpdateSerializer,
    WebhookSecretRollSerializer,
)

ERRORS_409 = {**ERRORS, 409: ERRORS[400]}


class WebhookEndpointSchema(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    api_version = serializers.CharField(allow_null=True)
    application = serializers.CharField(allow_null=True)
    created = serializers.IntegerField()
    description = serializers.CharField(allow_null=True)
    enabled_events = serializers.ListField(child=serializers.CharField())
    livemode = serializers.BooleanField()
    metadata = serializers.DictField(child=serializers.CharField())
    secret = serializers.CharField(required=False, help_text="whsec_...: only in the create and roll_secret responses.")
    status = serializers.ChoiceField(choices=["enabled", "disabled"])
    url = serializers.CharField()


class WebhookEndpointListSchema(serializers.Serializer):
    object = serializers.CharField()
    url = serializers.CharField()
    has_more = serializers.BooleanField()
    data = WebhookEndpointSchema(many=True)


class DeletedWebhookEndpointSchema(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    deleted = serializers.BooleanField()


class WebhookEndpointApiBase(StripeApiView):
    api_resource = "webhook_endpoints"
    path_ids = {"endpoint_id": ("we", "webhook endpoint")}

    def get_endpoint(self, request, endpoint_id: str):
        caller = request.auth
        endpoint = selectors.webhook_endpoint_get(
            merchant=caller.merchant, livemode=caller.livemode, endpoint_id=endpoint_id
        )
        if endpoint is None:
            raise ResourceMissing(f"No such webhook endpoint: '{endpoint_id}'", param="id")
        return endpoint


class WebhookEndpointListCreateApi(WebhookEndpointApiBase):
    @extend_schema(
        operation_id="webhook_endpoints_list", responses={200: WebhookEndpointListSchema, **ERRORS},
        parameters=[
            OpenApiParameter("limit", int), OpenApiParameter("starting_after", str),
            OpenApiParameter("ending_before", str),
            OpenApiParameter("created", int, description="Unix time; also created[gt|gte|lt|lte]"),
        ],
    )
    def get(self, request):
        caller = request.auth
        params = self.query_params(request)
        WebhookEndpointListSerializer(data=params).is_valid(raise_exception=True)
        qs = selectors.webhook_endpoints_for(merchant=caller.merchant, livemode=caller.livemode)
        return Response(paginate(
            params=params, queryset=qs.filter(created_filter(params)), serialize=webhook_endpoint_json,
            url="/v1/webhook_endpoints", id_prefix="we",
            lookup=lambda pk: selectors.webhook_endpoint_cursor(
                merchant=caller.merchant, livemode=caller.livemode, endpoint_id=pk
            ),
        ))

    @extend_schema(
        operation_id="webhook_endpoints_create", request=WebhookEndpointCreateSerializer,
        responses={200: WebhookEndpointSchema, **ERRORS_409},
    )
    @idempotent(sealed=("secret",))
    def post(self, request):
        caller = request.auth
        serializer = WebhookEndpointCreateSerializer(data=request.data, context={"livemode": caller.livemode})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint = services.webhook_endpoint_create(
            merchant=caller.merchant, livemode=caller.livemode, url=data["url"],
            enabled_events=data["enabled_events"], description=data.get("description", ""),
            metadata=data.get("metadata") or {}, request=request,
        )
        return Response(webhook_endpoint_json(endpoint, include_secret=True))


class WebhookEndpointDetailApi(WebhookEndpointApiBase):
    @extend_schema(operation_id="webhook_endpoints_retrieve", responses={200: WebhookEndpointSchema, **ERRORS})
    def get(self, request, endpoint_id: str):
        return Response(webhook_endpoint_json(self.get_endpoint(request, endpoint_id)))

    @extend_schema(
        operation_id="webhook_endpoints_update", request=WebhookEndpointUpdateSerializer,
        responses={200: WebhookEndpointSchema, **ERRORS_409},
    )
    @idempotent
    def post(self, request, endpoint_id: str):
        caller = request.auth
        serializer = WebhookEndpointUpdateSerializer(data=request.data, context={"livemode": caller.livemode})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint = self.get_endpoint(request, endpoint_id)
        metadata = data.get("metadata", {})
        endpoint = services.webhook_endpoint_update(
            endpoint=endpoint, url=data.get("url"), enabled_events=data.get("enabled_events"),
            description=data.get("description"), metadata=metadata or {},
            clear_metadata="metadata" in data and metadata is None, disabled=data.get("disabled"),
            request=request,
        )
        return Response(webhook_endpoint_json(endpoint))

    @extend_schema(operation_id="webhook_endpoints_delete", responses={200: DeletedWebhookEndpointSchema, **ERRORS})
    def delete(self, request, endpoint_id: str):
        endpoint = services.webhook_endpoint_delete(endpoint=self.get_endpoint(request, endpoint_id),
                                                    request=request)
        return Response(webhook_endpoint_deleted_json(endpoint))


class WebhookEndpointRollSecretApi(WebhookEndpointApiBase):
    @extend_schema(
        operation_id="webhook_endpoints_roll_secret", request=WebhookSecretRollSerializer,
        responses={200: WebhookEndpointSchema, **ERRORS_409},
        description="Our extension: a new `secret`; the current one keeps signing beside it for "
                    "`previous_secret_expires_in` seconds (default 86400).",
    )
    @idempotent(sealed=("secret",))
    def post(self, request, endpoint_id: str):
        serializer = WebhookSecretRollSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        grace = serializer.validated_data.get("previous_secret_expires_in")
        endpoint = services.webhook_endpoint_secret_roll(
            endpoint=self.get_endpoint(request, endpoint_id),
            grace=services.WEBHOOK_SECRET_GRACE if grace is None else timedelta(seconds=grace), request=request,
        )
        return Response(webhook_endpoint_json(endpoint, include_secret=True))
