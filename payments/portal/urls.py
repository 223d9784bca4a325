"""The portal's payments and developer pages, in the portal's namespace (gateway/urls.py)."""
from django.urls import path

from . import developer_views, settings_views, views

urlpatterns = [
    path("payments/", views.payment_list, name="payment-list"),
    path("payments/export.csv", views.payment_export, name="payment-export"),
    path("payments/<str:intent_id>/", views.payment_detail, name="payment-detail"),
    path("payments/<str:intent_id>/cancel", views.payment_cancel, name="payment-cancel"),
    path("unmatched-deposits/", views.unmatched_list, name="unmatched-list"),
    path("webhooks/", developer_views.webhook_list, name="webhook-list"),
    path("webhooks/new", developer_views.webhook_create, name="webhook-create"),
    path("webhooks/<str:endpoint_id>/", developer_views.webhook_detail, name="webhook-detail"),
    path("webhooks/<str:endpoint_id>/edit", developer_views.webhook_edit, name="webhook-edit"),
    path("webhooks/<str:endpoint_id>/toggle", developer_views.webhook_toggle, name="webhook-toggle"),
    path("webhooks/<str:endpoint_id>/test", developer_views.webhook_test, name="webhook-test"),
    path("webhooks/<str:endpoint_id>/roll", developer_views.webhook_roll, name="webhook-roll"),
    path("webhooks/<str:endpoint_id>/deliveries/<int:delivery_id>/", developer_views.webhook_delivery,
         name="webhook-delivery"),
    path("webhooks/<str:endpoint_id>/deliveries/<int:delivery_id>/resend", developer_views.webhook_delivery_resend,
         name="webhook-delivery-resend"),
    path("settings/payment-methods/", settings_views.settings_payment_methods, name="settings-payment-methods"),
    path("settings/payment-methods/save", settings_views.settings_payment_methods_save,
         name="settings-payment-methods-save"),
    path("events/", developer_views.event_list, name="event-list"),
    path("events/<str:event_id>/", developer_views.event_detail, name="event-detail"),
]
