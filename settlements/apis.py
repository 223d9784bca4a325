"""/v1/balance, /v1/balance_transactions and /v1/payouts. Thin: validate with a serializer, call one service or
selector, present."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from gateway.api.errors import ResourceMissing
from gateway.api.lists import created_filter, paginate
from gateway.api.views import StripeApiView
from merchants.idempotency import idempotent
from payments.schemas import ErrorSchema

from . import payouts, selectors
from .presenters import balance_json, balance_transaction_json, payout_json
from .serializers import (BalanceTransactionListSerializer, EmptySerializer, PayoutCancelSerializer,
                          PayoutCreateSerializer, PayoutListSerializer, PayoutUpdateSerializer)

ERRORS = {400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema}
LIST_PARAMETERS = [OpenApiParameter("limit", int), OpenApiParameter("starting_after", str),
                   OpenApiParameter("ending_before", str),
                   OpenApiParameter("created", int, description="Unix time; also created[gt|gte|lt|lte]")]


class BalanceApi(StripeApiView):
    api_resource = "balance"

    @extend_schema(operation_id="balance_retrieve", responses={200: dict, **ERRORS})
    def get(self, request):
        caller = request.auth
        EmptySerializer(data=self.query_params(request)).is_valid(raise_exception=True)
        balances = selectors.merchant_fiat_balances(merchant=caller.merchant, livemode=caller.livemode)
        return Response(balance_json(balances=balances, livemode=caller.livemode))


class BalanceTransactionListApi(StripeApiView):
    api_resource = "balance_transactions"

    @extend_schema(operation_id="balance_transactions_list", responses={200: dict, **ERRORS}, parameters=[
        *LIST_PARAMETERS, OpenApiParameter("type", str), OpenApiParameter("source", str),
        OpenApiParameter("payout", str)])
    def get(self, request):
        caller = request.auth
        params = self.query_params(request)
        filters = BalanceTransactionListSerializer(data=params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        qs = selectors.balance_transaction_journals(merchant=caller.merchant, livemode=caller.livemode)
        qs = qs.filter(created_filter(params))
        if "type" in data:
            qs = qs.filter(kind__in=selectors.TYPE_KINDS[data["type"]])
        if "source" in data:
            qs = qs.filter(selectors.balance_transaction_source_filter(data["source"]))
        if "payout" in data:
            qs = qs.filter(source_type=payouts.PAYOUT, source_id=data["payout"])

        scope = selectors.balance_transaction_journals(merchant=caller.merchant, livemode=caller.livemode)

        def lookup(txn_id):
            journal_id = selectors.balance_transaction_journal_id(txn_id)
            return None if journal_id is None else scope.filter(pk=journal_id).first()

        page = paginate(params=params, queryset=qs, serialize=lambda j: j, url="/v1/balance_transactions",
                        id_prefix="txn", lookup=lookup)
        page["data"] = [balance_transaction_json(bt) for bt in selectors.balance_transactions_present(page["data"])]
        return Response(page)


class BalanceTransactionDetailApi(StripeApiView):
    api_resource = "balance_transactions"
    path_ids = {"txn_id": ("txn", "balance_transaction")}

    @extend_schema(operation_id="balance_transactions_retrieve", responses={200: dict, **ERRORS})
    def get(self, request, txn_id: str):
        caller = request.auth
        journal_id = selectors.balance_transaction_journal_id(txn_id)
        journal = None if journal_id is None else selectors.balance_transaction_journals(
            merchant=caller.merchant, livemode=caller.livemode).filter(pk=journal_id).first()
        if journal is None:
            raise ResourceMissing(f"No such balance_transaction: '{txn_id}'", param="id")
        return Response(balance_transaction_json(selectors.balance_transactions_present([journal])[0]))


class PayoutApiBase(StripeApiView):
    api_resource = "payouts"
    path_ids = {"payout_id": ("po", "payout")}

    def get_payout(self, request, payout_id: str):
        caller = request.auth
        payout = selectors.payout_get(merchant=caller.merchant, livemode=caller.livemode, payout_id=payout_id)
        if payout is None:
            raise ResourceMissing(f"No such payout: '{payout_id}'", param="id")
        return payout


class PayoutListCreateApi(PayoutApiBase):
    @extend_schema(operation_id="payouts_list", responses={200: dict, **ERRORS},
                   parameters=[*LIST_PARAMETERS, OpenApiParameter("status", str)])
    def get(self, request):
        caller = request.auth
        params = self.query_params(request)
        filters = PayoutListSerializer(data=params)
        filters.is_valid(raise_exception=True)
        qs = selectors.payouts_for(merchant=caller.merchant, livemode=caller.livemode).filter(created_filter(params))
        if "status" in filters.validated_data:
            qs = qs.filter(status=filters.validated_data["status"])
        return Response(paginate(
            params=params, queryset=qs, serialize=payout_json, url="/v1/payouts", id_prefix="po",
            lookup=lambda pk: selectors.payout_cursor(merchant=caller.merchant, livemode=caller.livemode,
                                                      payout_id=pk)))

    @extend_schema(operation_id="payouts_create", request=PayoutCreateSerializer, responses={200: dict, **ERRORS})
    @idempotent
    def post(self, request):
        caller = request.auth
        serializer = PayoutCreateSerializer(data=request.data, context={"livemode": caller.livemode})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        payout = payouts.payout_create(
            merchant=caller.merchant, token=data["token"], amount=data["amount"], currency=data["currency"],
            metadata=data.get("metadata") or {}, description=data.get("description", ""),
            actor=request.auth, request=request, **self.request_context_args(request))
        return Response(payout_json(self.get_payout(request, payout.pk)))


class PayoutDetailApi(PayoutApiBase):
    @extend_schema(operation_id="payouts_retrieve", responses={200: dict, **ERRORS})
    def get(self, request, payout_id: str):
        return Response(payout_json(self.get_payout(request, payout_id)))

    @extend_schema(operation_id="payouts_update", request=PayoutUpdateSerializer, responses={200: dict, **ERRORS})
    @idempotent
    def post(self, request, payout_id: str):
        serializer = PayoutUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        metadata = serializer.validated_data.get("metadata", {})
        payout = self.get_payout(request, payout_id)
        payouts.payout_update(payout=payout, metadata=metadata or {},
                              clear_metadata="metadata" in serializer.validated_data and metadata is None,
                              actor=request.auth, request=request)
        return Response(payout_json(self.get_payout(request, payout_id)))


class PayoutCancelApi(PayoutApiBase):
    @extend_schema(operation_id="payouts_cancel", request=PayoutCancelSerializer, responses={200: dict, **ERRORS})
    @idempotent
    def post(self, request, payout_id: str):
        PayoutCancelSerializer(data=request.data).is_valid(raise_exception=True)
        payout = self.get_payout(request, payout_id)
        payouts.payout_cancel(payout=payout, actor=request.auth, request=request, **self.request_context_args(request))
        return Response(payout_json(self.get_payout(request, payout_id)))
