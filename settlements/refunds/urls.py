"""The hosted refund claim page, under /claim/."""
from django.urls import path

from . import views

app_name = "refund_claim"
urlpatterns = [
    path("<str:claim_token>", views.claim_page, name="page"),
]
