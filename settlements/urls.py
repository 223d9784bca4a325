from django.urls import path

from . import views

app_name = "payouts_portal"
urlpatterns = [
    path("", views.payout_addresses, name="addresses"),
    path("<int:address_id>/remove", views.payout_address_remove, name="address-remove"),
    path("schedule", views.payout_schedule, name="schedule"),
]
