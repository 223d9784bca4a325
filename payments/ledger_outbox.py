"""The Charge-fact queue between payments (writes a row in the transaction that creates or reverses a Charge) and the
ledger in settlements (claims rows, posts them, deletes them in its own transaction), as wallets.activity is between
the chain watcher and payments. The ledger is told by a task sent by name after the commit; its beat run is the
fallback, so a lost message only delays the posting."""

from django.db import transaction

from gateway.celery import task_wake

from .models import Charge, ChargeDust, ChargeLedgerOutbox

LEDGER_TASK = "settlements.tasks.post_charge_facts"
Kind = ChargeLedgerOutbox.Kind


def charge_ledger_fact_record(*, charge: Charge, kind: str, dust: ChargeDust | None = None) -> None:
    """Queue a Charge fact for the ledger (`dust`: the carried dust transfer a `dust_reversal` is about); call inside
    the transaction that makes the fact."""
    ChargeLedgerOutbox.objects.create(charge=charge, kind=kind, dust=dust)
    transaction.on_commit(_notify_ledger)


def charge_ledger_fact_claim(*, limit: int = 200, exclude_ids=()) -> list[ChargeLedgerOutbox]:
    """Lock up to `limit` rows no other consumer holds, oldest first (a Charge's credit before its reversal). Call
    inside a transaction; the rows come back if it rolls back."""
    return list(
        ChargeLedgerOutbox.objects.select_for_update(skip_locked=True, of=("self",)).exclude(id__in=list(exclude_ids))
        .select_related("charge__transfer__token__network", "dust__transfer").order_by("id")[:limit]
    )


def charge_ledger_fact_complete(*, row_id: int) -> None:
    ChargeLedgerOutbox.objects.filter(id=row_id).delete()


def _notify_ledger() -> None:
    task_wake(LEDGER_TASK)
