"""`manage.py check_live [--json] [--skip NAME ...]`: production readiness, one line per check (PASS / WARN / FAIL,
what it saw, what to do); exit 1 when any check fails (docs/operations.md, "Going live"). Writes nothing."""
import json

from django.core.management.base import BaseCommand, CommandError

from monitoring.live import CHECKS, FAIL, live_checks


class Command(BaseCommand):
    help = ("Production readiness: KEKs, DEBUG and `check --deploy`, ALLOWED_HOSTS, webhooks' SSRF guard, email, "
            "chain ids, each live network's RPC URLs and scanner lag, hot wallets' gas and cold addresses, the signer "
            "worker, the audit chain's last records. Exit 1 when one fails.")
    requires_system_checks = []  # check_deploy runs them itself, and reports them as one line

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="as_json", action="store_true", help="one JSON object")
        parser.add_argument("--skip", action="append", default=[], choices=sorted(CHECKS), metavar="CHECK",
                            help=f"leave a check out (repeatable): {', '.join(CHECKS)}")

    def handle(self, *args, as_json, skip, **options):
        rows = live_checks(skip=frozenset(skip))
        failed = [row for row in rows if row.status == FAIL]
        if as_json:
            self.stdout.write(json.dumps({"ok": not failed, "checks": [row.as_json() for row in rows]}))
        else:
            for row in rows:
                self.stdout.write(row.line())
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed: {', '.join(row.name for row in failed)}")
        if not as_json:
            self.stdout.write("ready for live payments" + (
                "" if all(row.status != "WARN" for row in rows) else " (read the warnings)"))
