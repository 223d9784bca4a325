import json

from django.core.management.base import BaseCommand
from django.db import transaction

from audit.actors import command_actor
from audit.services import audit_record

from settlements.models import Payout
from settlements.payouts import payouts_advance, payouts_run_automatic


class Command(BaseCommand):
    help = ("run: create the automatic payouts that are due (the merchants' schedules), then send pending payouts "
            "and settle those whose transaction is final (what the beat tasks do); list: the open payouts.")

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["run", "list"])
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, action, **options):
        if action == "run":
            actor = command_actor("payouts run")
            created = payouts_run_automatic(actor=actor)
            result = {"automatic_created": [p.id for p in created], **payouts_advance()}
            with transaction.atomic():  # a summary: each payout created has its own record already
                audit_record(actor=actor, action="payouts.run", after=result)
        else:
            result = {"open": [
                {"id": p.id, "merchant": p.merchant_id, "status": p.status, "amount": p.amount,
                 "currency": p.currency, "network": p.network.api_name, "token": p.token.currency,
                 "pending_reason": p.pending_reason, "awaiting_approval": p.awaiting_approval}
                for p in Payout.objects.filter(status__in=["pending", "in_transit"]).select_related(
                    "network", "token").order_by("created")]}
        self.stdout.write(_dumps(result) if options["json"] else "\n".join(f"{k}: {v}" for k, v in result.items()))


def _dumps(value) -> str:
    return json.dumps(value, indent=2)
