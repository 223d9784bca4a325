from django.urls import path

from . import apis

urlpatterns = [
    path("payment_intents", apis.PaymentIntentListCreateApi.as_view()),
    path("payment_intents/<str:intent_id>", apis.PaymentIntentDetailApi.as_view()),
    path("payment_intents/<str:intent_id>/cancel", apis.PaymentIntentCancelApi.as_view()),
    path("payment_intents/<str:intent_id>/confirm", apis.PaymentIntentConfirmApi.as_view()),
]
