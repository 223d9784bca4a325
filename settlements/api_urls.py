from django.urls import path

from . import apis

urlpatterns = [
    path("balance", apis.BalanceApi.as_view()),
    path("balance_transactions", apis.BalanceTransactionListApi.as_view()),
    path("balance_transactions/<str:txn_id>", apis.BalanceTransactionDetailApi.as_view()),
    path("payouts", apis.PayoutListCreateApi.as_view()),
    path("payouts/<str:payout_id>", apis.PayoutDetailApi.as_view()),
    path("payouts/<str:payout_id>/cancel", apis.PayoutCancelApi.as_view()),
]
