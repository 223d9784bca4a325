"""Merchant-side objects as the API shows them (Stripe's field names). Pure functions of the rows."""
from .models import WebhookEndpoint


def _unix(dt):
    return int(dt.timestamp()) if dt else None


def webhook_endpoint_json(endpoint: WebhookEndpoint, *, include_secret: bool = False) -> dict:
    """Stripe's webhook_endpoint; `secret` only when asked (the create and roll_secret responses)."""
    data = {
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "api_version": None,
        "application": None,
        "created": _unix(endpoint.created),
        "description": endpoint.description or None,
        "enabled_events": list(endpoint.enabled_events),
        "livemode": endpoint.livemode,
        "metadata": endpoint.metadata,
        "status": endpoint.status,
        "url": endpoint.url,
    }
    if include_secret:
        data["secret"] = endpoint.secret
    return data


def webhook_endpoint_deleted_json(endpoint: WebhookEndpoint) -> dict:
    return {"id": endpoint.id, "object": "webhook_endpoint", "deleted": True}
