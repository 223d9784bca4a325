"""/v1 routes of refunds (included by gateway.urls)."""
from django.urls import path

from . import apis

urlpatterns = [
    path("refunds", apis.RefundListCreateApi.as_view()),
    path("refunds/<str:refund_id>", apis.RefundDetailApi.as_view()),
    path("refunds/<str:refund_id>/cancel", apis.RefundCancelApi.as_view()),
]
