"""The JSON of the money-out objects, in Stripe's shapes (Balance, BalanceTransaction, Payout)."""
from .models import Payout
from .selectors import BalanceTransaction, MerchantFiatBalance


def _ts(moment) -> int | None:
    return int(moment.timestamp()) if moment else None


def payout_json(payout: Payout) -> dict:
    tx = payout.outgoing_transaction
    tx_hash = tx.mined_attempt.tx_hash if tx and tx.mined_attempt_id else (
        tx.current_attempt.tx_hash if tx and tx.current_attempt_id else None)
    return {
        "id": payout.id,
        "object": "payout",
        "amount": payout.amount,
        "arrival_date": _ts(payout.arrived_at or payout.created),
        "automatic": payout.automatic,
        "balance_transaction": f"txn_{payout.reserve_journal_id}" if getattr(payout, "reserve_journal_id", None)
        else None,
        "created": _ts(payout.created),
        "currency": payout.currency,
        "description": payout.description or None,
        "destination": payout.address,
        "failure_balance_transaction": f"txn_{payout.failure_journal_id}"
        if getattr(payout, "failure_journal_id", None) else None,
        "failure_code": payout.failure_code or None,
        "failure_message": payout.failure_message or None,
        "livemode": payout.livemode,
        "metadata": payout.metadata,
        "method": "standard",
        "source_type": "crypto",
        "statement_descriptor": None,
        "status": payout.status,
        "type": "crypto",
        "crypto": {
            "network": payout.network.api_name,
            "token_currency": payout.token.currency,
            "amount_base_units": str(payout.amount_base_units),
            "address": payout.address,
            "transaction_hash": tx_hash,
            "pending_reason": payout.pending_reason or None,
            "awaiting_approval": payout.awaiting_approval,
        },
    }


def balance_json(*, balances: list[MerchantFiatBalance], livemode: bool) -> dict:
    def side(name: str) -> list[dict]:
        return [{
            "amount": getattr(b, name),
            "currency": b.currency,
            "source_types": {"crypto": getattr(b, name)},
            "crypto": [{"network": a.network, "token_currency": a.token_currency,
                        "amount_base_units": str(getattr(a, name))} for a in b.assets],
        } for b in balances]

    return {"object": "balance", "livemode": livemode, "available": side("available"), "pending": side("pending"),
            "reserved": side("reserved")}


def balance_transaction_json(bt: BalanceTransaction) -> dict:
    return {
        "id": bt.id,
        "object": "balance_transaction",
        "amount": bt.amount,
        "available_on": _ts(bt.available_on),
        "created": _ts(bt.created),
        "currency": bt.currency,
        "description": bt.description,
        "exchange_rate": None,
        "fee": bt.fee,
        "fee_details": [{"amount": bt.fee, "application": None, "currency": bt.currency,
                         "description": "Gateway fee", "type": "stripe_fee"}] if bt.fee else [],
        "net": bt.net,
        "reporting_category": bt.reporting_category,
        "source": bt.source,
        "status": bt.status,
        "type": bt.type,
        "crypto": {"network": bt.network, "token_currency": bt.token_currency,
                   "amount_base_units": str(bt.amount_base_units), "fee_base_units": str(bt.fee_base_units),
                   "net_base_units": str(bt.net_base_units)},
    }
