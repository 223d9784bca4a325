"""/v1/refunds: thin views (validate with a serializer, call one service, present the row)."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from gateway.api.errors import ResourceMissing
from gateway.api.lists import created_filter, paginate
from gateway.api.views import StripeApiView
from merchants.idempotency import idempotent
from payments.schemas import ErrorSchema

from . import selectors, services
from .presenters import refund_json
from .serializers import RefundCancelSerializer, RefundCreateSerializer, RefundListSerializer, RefundUpdateSerializer

ERRORS = {400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema}


class RefundApiBase(StripeApiView):
    api_resource = "refunds"
    path_ids = {"refund_id": ("re", "refund")}

    def get_refund(self, request, refund_id: str):
        caller = request.auth
        refund = selectors.refund_get(merchant=caller.merchant, livemode=caller.livemode, refund_id=refund_id)
        if refund is None:
            raise ResourceMissing(f"No such refund: '{refund_id}'", param="id")
        return refund

    def context(self, request) -> services.RefundContext:
        return services.RefundContext(**self.request_context_args(request), actor=request.auth, request=request)

    def present(self, request, refund_id: str) -> Response:
        return Response(refund_json(self.get_refund(request, refund_id)))


class RefundListCreateApi(RefundApiBase):
    @extend_schema(operation_id="refunds_list", responses={200: dict, **ERRORS}, parameters=[
        OpenApiParameter("charge", str), OpenApiParameter("payment_intent", str), OpenApiParameter("limit", int),
        OpenApiParameter("starting_after", str), OpenApiParameter("ending_before", str),
    ])
    def get(self, request):
        caller = request.auth
        params = self.query_params(request)
        filters = RefundListSerializer(data=params)
        filters.is_valid(raise_exception=True)
        qs = selectors.refunds_for(merchant=caller.merchant, livemode=caller.livemode).filter(created_filter(params))
        for name in ("charge", "payment_intent"):
            if name in filters.validated_data:
                qs = qs.filter(**{f"{name}_id": filters.validated_data[name]})
        return Response(paginate(
            params=params, queryset=qs, url="/v1/refunds", id_prefix="re", serialize=refund_json,
            lookup=lambda pk: selectors.refund_cursor(merchant=caller.merchant, livemode=caller.livemode,
                                                      refund_id=pk),
        ))

    @extend_schema(operation_id="refunds_create", request=RefundCreateSerializer, responses={200: dict, **ERRORS})
    @idempotent
    def post(self, request):
        caller = request.auth
        serializer = RefundCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        crypto = data.get("crypto", {})
        common = dict(reason=data.get("reason", ""), metadata=data.get("metadata") or {},
                      destination_address=crypto.get("destination_address", ""), ctx=self.context(request))
        if crypto.get("unmatched_deposit"):
            deposit = selectors.unmatched_deposit_get(merchant=caller.merchant, livemode=caller.livemode,
                                                      deposit_id=crypto["unmatched_deposit"])
            if deposit is None:
                raise ResourceMissing(f"No such deposit: '{crypto['unmatched_deposit']}'",
                                      param="crypto[unmatched_deposit]")
            refund = services.refund_create_for_deposit(deposit=deposit, **common)
        else:
            charge = selectors.refundable_charge(merchant=caller.merchant, livemode=caller.livemode,
                                                 charge_id=data.get("charge"),
                                                 payment_intent_id=data.get("payment_intent"))
            if charge is None:
                name = "charge" if data.get("charge") else "payment_intent"
                raise ResourceMissing(f"No such {name} with a charge to refund: '{data.get(name)}'", param=name)
            refund = services.refund_create(merchant=caller.merchant, livemode=caller.livemode, charge=charge,
                                            amount=data.get("amount"), **common)
        return self.present(request, refund.pk)


class RefundDetailApi(RefundApiBase):
    @extend_schema(operation_id="refunds_retrieve", responses={200: dict, **ERRORS})
    def get(self, request, refund_id: str):
        return self.present(request, refund_id)

    @extend_schema(operation_id="refunds_update", request=RefundUpdateSerializer, responses={200: dict, **ERRORS})
    @idempotent
    def post(self, request, refund_id: str):
        serializer = RefundUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        refund = self.get_refund(request, refund_id)
        metadata = data.get("metadata", {})
        services.refund_update(refund=refund, metadata=metadata or {},
                               clear_metadata="metadata" in data and metadata is None, ctx=self.context(request))
        return self.present(request, refund_id)


class RefundCancelApi(RefundApiBase):
    @extend_schema(operation_id="refunds_cancel", request=RefundCancelSerializer, responses={200: dict, **ERRORS})
    @idempotent
    def post(self, request, refund_id: str):
        RefundCancelSerializer(data=request.data).is_valid(raise_exception=True)
        services.refund_cancel(refund=self.get_refund(request, refund_id), ctx=self.context(request))
        return self.present(request, refund_id)
