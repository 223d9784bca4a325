"""/v1/events: what happened to the caller's objects in the last 30 days (Stripe's event objects)."""
import re

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from gateway.api.errors import InvalidRequest, ResourceMissing
from gateway.api.fields import StrictBooleanField, StrictCharField, StripeParamsSerializer
from gateway.api.lists import created_filter, paginate
from gateway.api.schemas import ERRORS
from gateway.api.views import StripeApiView

from . import selectors
from .presenters import event_json

MAX_TYPES = 20
_TYPE_RE = re.compile(r"^[a-z0-9_.*]{1,100}$")


def _check_type(value: str) -> str:
    if not _TYPE_RE.match(value):
        raise serializers.ValidationError(
            "must be an event type such as `payment_intent.succeeded`, or a group such as `payment_intent.*`."
        )
    return value


class TypePatternField(StrictCharField):
    def to_internal_value(self, data):
        return _check_type(super().to_internal_value(data))


class EventTypeField(StrictCharField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if "*" in _check_type(value):
            raise serializers.ValidationError("`types` takes exact event names; use `type` for a `*` group.")
        return value


class EventListSerializer(StripeParamsSerializer):
    allowed_extra = ("expand", "limit", "starting_after", "ending_before", "created")
    type = TypePatternField(required=False)
    types = serializers.ListField(child=EventTypeField(), required=False, allow_empty=False, max_length=MAX_TYPES)
    delivery_success = StrictBooleanField(required=False)

    def to_internal_value(self, data):
        if isinstance(data, dict) and isinstance(data.get("types"), str):
            data = {**data, "types": [data["types"]]}
        return super().to_internal_value(data)


class EventRequestSchema(serializers.Serializer):
    id = serializers.CharField(allow_null=True)
    idempotency_key = serializers.CharField(allow_null=True)


class EventDataSchema(serializers.Serializer):
    object = serializers.DictField()
    previous_attributes = serializers.DictField(required=False)


class EventSchema(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    api_version = serializers.CharField(allow_null=True)
    created = serializers.IntegerField()
    data = EventDataSchema()
    livemode = serializers.BooleanField()
    pending_webhooks = serializers.IntegerField()
    request = EventRequestSchema()
    type = serializers.CharField()


class EventListSchema(serializers.Serializer):
    object = serializers.CharField()
    url = serializers.CharField()
    has_more = serializers.BooleanField()
    data = EventSchema(many=True)


class EventListApi(StripeApiView):
    api_resource = "events"

    @extend_schema(
        operation_id="events_list", responses={200: EventListSchema, **ERRORS},
        parameters=[
            OpenApiParameter("type", str, description="An event type, or a group with `*` (`payment_intent.*`)"),
            OpenApiParameter("types", str, many=True, description="Up to 20 exact event types (`types[]=...`)"),
            OpenApiParameter("delivery_success", bool), OpenApiParameter("limit", int),
            OpenApiParameter("starting_after", str), OpenApiParameter("ending_before", str),
            OpenApiParameter("created", int, description="Unix time; also created[gt|gte|lt|lte]"),
        ],
    )
    def get(self, request):
        caller = request.auth
        params = self.query_params(request)
        filters = EventListSerializer(data=params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        if "type" in data and "types" in data:
            raise InvalidRequest("You may pass either `type` or `types`, but not both.", param="types")
        qs = selectors.events_for(merchant=caller.merchant, livemode=caller.livemode).filter(created_filter(params))
        if "type" in data:
            qs = qs.filter(selectors.event_type_q(data["type"]))
        if "types" in data:
            qs = qs.filter(type__in=data["types"])
        if "delivery_success" in data:
            qs = selectors.events_delivery_success(qs, data["delivery_success"])
        return Response(paginate(
            params=params, queryset=qs, serialize=event_json, url="/v1/events", id_prefix="evt",
            lookup=lambda pk: selectors.event_cursor(merchant=caller.merchant, livemode=caller.livemode, event_id=pk),
        ))


class EventDetailApi(StripeApiView):
    api_resource = "events"
    path_ids = {"event_id": ("evt", "event")}

    @extend_schema(operation_id="events_retrieve", responses={200: EventSchema, **ERRORS})
    def get(self, request, event_id: str):
        caller = request.auth
        event = selectors.event_get(merchant=caller.merchant, livemode=caller.livemode, event_id=event_id)
        if event is None:
            raise ResourceMissing(f"No such event: '{event_id}'", param="id")
        return Response(event_json(event))
