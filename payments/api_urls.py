from django.urls import path

from . import apis, charge_apis, event_apis

urlpatterns = [
    path("payment_intents", apis.PaymentIntentListCreateApi.as_view()),
    path("payment_intents/<str:intent_id>", apis.PaymentIntentDetailApi.as_view()),
    path("payment_intents/<str:intent_id>/cancel", apis.PaymentIntentCancelApi.as_view()),
    path("payment_intents/<str:intent_id>/confirm", apis.PaymentIntentConfirmApi.as_view()),
    path("charges", charge_apis.ChargeListApi.as_view()),
    path("charges/<str:charge_id>", charge_apis.ChargeDetailApi.as_view()),
    path("events", event_apis.EventListApi.as_view()),
    path("events/<str:event_id>", event_apis.EventDetailApi.as_view()),
    path("test_helpers/payment_intents/<str:intent_id>/simulate_crypto_deposit",
         charge_apis.SimulateCryptoDepositApi.as_view()),
]
