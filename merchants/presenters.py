"""Merchant-side objects as the API shows them (Stripe's field names). Pure functions of the rows."""
from .models import ApiKey, WebhookEndpoint


def _unix(dt):
    return int(dt.timestamp()) if dt else None


KEY_FIELDS = {ApiKey.Kind.SECRET: "secret_key", ApiKey.Kind.RESTRICTED: "restricted_key",
              ApiKey.Kind.PUBLISHABLE: "publishable_key"}


def issued_key_json(api_key: ApiKey, raw: str) -> dict:
    """A key as the ops commands print it, once: the raw key under `secret_key`, `restricted_key` or
    `publishable_key`."""
    return {"merchant_id": api_key.merchant_id, "key_id": api_key.id, "livemode": api_key.livemode,
            KEY_FIELDS[ApiKey.Kind(api_key.kind)]: raw}


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
