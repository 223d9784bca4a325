"""PaymentIntent and Event as the API shows them (Stripe's field names). Pure functions of the rows."""
from django.conf import settings

from .models import PaymentIntent
from .pricing import erc20_payment_uri


def unix(dt):
    return int(dt.timestamp()) if dt else None


def hosted_instructions_url(intent: PaymentIntent) -> str:
    return f"{settings.GATEWAY_PUBLIC_URL}/pay/{intent.client_secret}"


def deposit_addresses(intent: PaymentIntent) -> dict:
    """{network api name: {address, supported_tokens: [...]}} from the intent's fixed payment options."""
    address = intent.deposit_address.address
    result: dict = {}
    for option in intent.options.all():
        token = option.token
        network = token.network
        entry = result.setdefault(network.api_name, {"address": address, "supported_tokens": []})
        entry["supported_tokens"].append({
            "token_currency": token.currency,
            "token_contract_address": token.contract_address,
            "decimals": token.decimals,
            "amount": str(option.amount_base_units),
            "payment_uri": erc20_payment_uri(
                token_address=token.contract_address, chain_id=network.chain_id, recipient=address,
                amount_base_units=option.amount_base_units,
            ),
        })
    return result


def next_action(intent: PaymentIntent) -> dict | None:
    if intent.status != PaymentIntent.Status.REQUIRES_ACTION or intent.deposit_address_id is None:
        return None
    return {
        "type": "crypto_display_details",
        "crypto_display_details": {
            "hosted_instructions_url": hosted_instructions_url(intent),
            "expires_at": unix(intent.expires_at),
            "deposit_addresses": deposit_addresses(intent),
        },
    }


def payment_intent_json(intent: PaymentIntent, *, include_client_secret: bool = True) -> dict:
    """The intent as the API shows it. Remembered on the instance until one of its fields or payment options
    changes, so that creation, which shows the intent in its events and in its response, builds it once."""
    state = _presented_state(intent, include_client_secret)
    remembered = intent.__dict__.get("_presented")
    if remembered is not None and remembered[0] == state:
        return remembered[1]
    data = _payment_intent_json(intent, include_client_secret=include_client_secret)
    intent.__dict__["_presented"] = (state, data)
    return data


# What Stripe returns when a PaymentIntent is retrieved with a publishable key and its client_secret (the fields its
# API reference marks "retrievable with publishable key"): never the metadata, the charges, the return URL.
PUBLISHABLE_FIELDS = (
    "id", "object", "amount", "canceled_at", "cancellation_reason", "capture_method", "client_secret",
    "confirmation_method", "created", "currency", "description", "last_payment_error", "livemode", "next_action",
    "payment_method", "payment_method_types", "processing", "receipt_email", "setup_future_usage", "shipping",
    "status",
)


def payment_intent_publishable_json(intent: PaymentIntent) -> dict:
    data = payment_intent_json(intent)
    return {name: data[name] for name in PUBLISHABLE_FIELDS}


def _presented_state(intent: PaymentIntent, include_client_secret: bool) -> tuple:
    options = getattr(intent, "_prefetched_objects_cache", {}).get("options")
    return (
        include_client_secret,
        tuple(getattr(intent, f.attname) for f in intent._meta.concrete_fields),
        None if options is None else tuple((o.token_id, o.amount_base_units) for o in options),
    )


def _payment_intent_json(intent: PaymentIntent, *, include_client_secret: bool) -> dict:
    return {
        "id": intent.id,
        "object": "payment_intent",
        "amount": intent.amount,
        "amount_capturable": 0,
        "amount_received": intent.amount_received,
        "amount_refunded": intent.amount_refunded,
        "application": None,
        "canceled_at": unix(intent.canceled_at),
        "cancellation_reason": intent.cancellation_reason or None,
        "capture_method": "automatic",
        "client_secret": intent.client_secret if include_client_secret else None,
        "confirmation_method": "automatic",
        "created": unix(intent.created),
        "currency": intent.currency,
        "customer": None,
        "description": intent.description or None,
        "expires_at": unix(intent.expires_at),
        "last_payment_error": None,
        "latest_charge": intent.latest_charge_id,
        "livemode": intent.livemode,
        "metadata": intent.metadata,
        "next_action": next_action(intent),
        "payment_method": None,
        "payment_method_options": {
            "crypto": {"mode": "deposit", "deposit_options": {"networks": list(intent.networks)}},
        },
        "payment_method_types": ["crypto"],
        "processing": None,
        "receipt_email": intent.receipt_email or None,
        "return_url": intent.return_url or None,
        "setup_future_usage": None,
        "shipping": None,
        "statement_descriptor": None,
        "status": intent.status,
    }


def event_json(event, *, pending_webhooks: int | None = None) -> dict:
    """Stripe's event object. `pending_webhooks` (deliveries not yet done) comes from the argument, else from the
    `pending_webhooks_count` annotation of payments.selectors.events_for, else 0 (a fresh event's payload)."""
    if pending_webhooks is None:
        pending_webhooks = getattr(event, "pending_webhooks_count", None) or 0
    return {
        "id": event.id,
        "object": "event",
        "api_version": settings.SPECTACULAR_SETTINGS["VERSION"],
        "created": unix(event.created),
        "data": event.data,
        "livemode": event.livemode,
        "pending_webhooks": pending_webhooks,
        "request": {"id": event.request_id or None, "idempotency_key": event.idempotency_key or None},
        "type": event.type,
    }


def charge_json(charge, *, head_number: int | None = None) -> dict:
    transfer = charge.transfer
    network = transfer.network
    token = transfer.token
    confirmations = None
    if head_number is not None:
        confirmations = max(0, head_number - transfer.block_number + 1)
    return {
        "id": charge.id,
        "object": "charge",
        "amount": charge.amount,
        "amount_captured": charge.amount,
        "amount_refunded": charge.amount_refunded,
        "amount_base_units": str(transfer.amount_base_units),
        "captured": True,
        "created": unix(charge.created),
        "currency": charge.currency,
        "livemode": charge.livemode,
        "paid": charge.status == "succeeded",
        "payment_intent": charge.payment_intent_id,
        "payment_method_details": {
            "type": "crypto",
            "crypto": {
                "buyer_address": transfer.from_address,
                "network": network.api_name,
                "token_currency": token.currency if token else network.native_currency,
                "transaction_hash": transfer.tx_hash,
            },
        },
        "log_index": transfer.log_index,
        "block_number": transfer.block_number,
        "confirmations": confirmations,
        "refunded": charge.amount_refunded == charge.amount,
        "status": charge.status,
    }


def unmatched_deposit_json(deposit) -> dict:
    transfer = deposit.transfer
    token = transfer.token
    return {
        "id": deposit.id,
        "object": "crypto.deposit",
        "created": unix(deposit.created),
        "livemode": deposit.livemode,
        "reason": deposit.reason,
        "payment_intent": deposit.payment_intent_id,
        "network": transfer.network.api_name,
        "address": transfer.to_address,
        "buyer_address": transfer.from_address,
        "token_currency": token.currency if token else transfer.network.native_currency,
        "token_contract_address": token.contract_address if token else None,
        "amount_base_units": str(transfer.amount_base_units),
        "transaction_hash": transfer.tx_hash,
        "log_index": transfer.log_index,
        "block_number": transfer.block_number,
    }
