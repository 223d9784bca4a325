"""/v1 routes of the merchants app (included beside payments.api_urls by gateway.urls)."""
from django.urls import path

from . import apis

urlpatterns = [
    path("webhook_endpoints", apis.WebhookEndpointListCreateApi.as_view()),
    path("webhook_endpoints/<str:endpoint_id>", apis.WebhookEndpointDetailApi.as_view()),
    path("webhook_endpoints/<str:endpoint_id>/roll_secret", apis.WebhookEndpointRollSecretApi.as_view()),
]
