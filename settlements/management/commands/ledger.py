from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.actors import command_actor
from audit.services import audit_record
from settlements.selectors import ledger_problems
from settlements.services import ledger_balances_rebuild


class Command(BaseCommand):
    help = ("check: every journal transaction balances and every running balance equals its entries (exit 1 and "
            "print each problem otherwise); rebuild: recompute the running balances from the entries.")

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["check", "rebuild"])

    def handle(self, *args, action, **options):
        if action == "rebuild":
            with transaction.atomic():
                changes = ledger_balances_rebuild()
                audit_record(actor=command_actor("ledger rebuild"), action="ledger.rebuild",
                             after={"changed": [{"account": a, "was": str(was), "now": str(now)}
                                                for a, was, now in changes]})
            for account_id, was, now in changes:
                self.stdout.write(f"account {account_id}: running balance {was} -> {now}")
            self.stdout.write("running balances rebuilt from the entries")
            return
        problems = ledger_problems()
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise CommandError(f"ledger check: {len(problems)} problem(s)", returncode=1)
        self.stdout.write("ledger check: every journal transaction balances; running balances match the entries")
