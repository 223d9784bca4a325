"""The Refund as the API shows it (Stripe's field names, with the crypto details under `destination_details` and
`crypto`). A pure function of the row."""
from django.conf import settings

from payments.presenters import unix

from .models import Refund


def claim_url(refund: Refund) -> str:
    return f"{settings.GATEWAY_PUBLIC_URL}/claim/{refund.claim_token}"


def _token_currency(refund: Refund) -> str:
    return refund.token.currency if refund.token_id else refund.network.native_currency


def _transaction_hash(refund: Refund) -> str | None:
    tx = refund.outgoing_transaction
    if tx is None:
        return None
    attempt = tx.mined_attempt or tx.current_attempt
    return attempt.tx_hash if attempt else None


def refund_json(refund: Refund) -> dict:
    next_action = None
    if refund.status == Refund.Status.REQUIRES_ACTION:
        next_action = {"type": "crypto_refund_claim", "crypto_refund_claim": {"url": claim_url(refund)}}
    return {
        "id": refund.id,
        "object": "refund",
        "amount": refund.amount,
        "balance_transaction": None,
        "charge": refund.charge_id,
        "created": unix(refund.created),
        "currency": refund.currency,
        "description": refund.description or None,
        "destination_details": {
            "type": "crypto",
            "crypto": {
                "network": refund.network.api_name,
                "token_currency": _token_currency(refund),
                "address": refund.destination_address or None,
                "transaction_hash": _transaction_hash(refund),
            },
        },
        "failure_reason": refund.failure_reason or None,
        "livemode": refund.livemode,
        "metadata": refund.metadata,
        "next_action": next_action,
        "payment_intent": refund.payment_intent_id,
        "reason": refund.reason or None,
        "receipt_number": None,
        "status": refund.status,
        "crypto": {
            "amount_base_units": str(refund.amount_base_units),
            "unmatched_deposit": refund.unmatched_deposit_id,
            "pending_reason": refund.pending_reason or None,
            "awaiting_approval": refund.awaiting_approval,
        },
    }
