import json

from django.core.management.base import BaseCommand
from django.db import transaction

from audit.actors import command_actor
from audit.services import audit_record

from settlements.refunds.presenters import refund_json
from settlements.refunds.selectors import refunds_open
from settlements.refunds.services import refunds_advance
from settlements.refunds.models import Refund


class Command(BaseCommand):
    help = ("list: the refunds (newest first; --status to filter) with where each stands; send: one pass of what the "
            "beat task `advance_refunds` does: send the pending refunds that can go, settle the ended ones.")

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["list", "send"])
        parser.add_argument("--status", choices=Refund.Status.values)
        parser.add_argument("--limit", type=int, default=50)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, action, status=None, limit=50, json=False, **options):
        if action == "send":
            summary = refunds_advance().as_json()
            with transaction.atomic():  # a summary of the pass
                audit_record(actor=command_actor("refunds send"), action="refunds.send", after=summary)
            self.stdout.write(_dumps(summary) if json else
                              ", ".join(f"{k} {v}" for k, v in summary.items()) or "nothing to do")
            return
        rows = list(refunds_open(status=status)[:limit])
        if json:
            self.stdout.write(_dumps([refund_json(r) for r in rows]))
            return
        for r in rows:
            tx = r.outgoing_transaction
            self.stdout.write(
                f"{r.id}  {r.status:<15} {r.merchant_id}  {'live' if r.livemode else 'test'}  "
                f"{r.amount_base_units} {(r.token.currency if r.token_id else 'native')}@{r.network.code}  "
                f"{r.charge_id or r.unmatched_deposit_id}  to {r.destination_address or '-'}  "
                f"tx {tx.pk if tx else '-'}{f' ({tx.status})' if tx else ''}"
                f"{f'  waiting: {r.pending_reason}' if r.pending_reason else ''}")
        if not rows:
            self.stdout.write("no refunds")


def _dumps(value) -> str:
    return json.dumps(value, indent=2, default=str)
