"""The portal pages of settlements, mounted in the portal's namespace (gateway/urls.py)."""
from django.urls import path

from . import views
from .portal.urls import urlpatterns as money_pages

urlpatterns = [
    path("payout-addresses/", views.payout_addresses, name="payout-addresses"),
    path("payout-addresses/<int:address_id>/remove", views.payout_address_remove, name="payout-address-remove"),
    path("payout-addresses/schedule", views.payout_schedule, name="payout-schedule"),
    *money_pages,
]
