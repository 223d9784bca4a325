"""The money pages in the portal's namespace (mounted by settlements/urls.py)."""
from django.urls import path

from . import views

urlpatterns = [
    path("balance/", views.balance, name="balance"),
    path("balance/export.csv", views.balance_export, name="balance-export"),
    path("payouts/", views.payout_list, name="payout-list"),
    path("payouts/new", views.payout_create, name="payout-create"),
    path("payouts/<str:payout_id>/", views.payout_detail, name="payout-detail"),
    path("payouts/<str:payout_id>/cancel", views.payout_cancel, name="payout-cancel"),
    path("refunds/", views.refund_list, name="refund-list"),
    path("refunds/<str:refund_id>/", views.refund_detail, name="refund-detail"),
    path("refunds/<str:refund_id>/cancel", views.refund_cancel, name="refund-cancel"),
    path("payments/<str:intent_id>/refund", views.payment_refund, name="payment-refund"),
    path("unmatched-deposits/<str:deposit_id>/refund", views.unmatched_refund, name="unmatched-refund"),
]
