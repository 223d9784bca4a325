"""`manage.py audit verify [--json]`: prove the audit chain unbroken, or name its first bad record (exit 1).
`manage.py audit head`: the current head (sequence and hash), to note outside the database: a chain rewritten from
scratch by someone who controls the database would end in another hash."""
import json

from django.core.management.base import BaseCommand, CommandError

from audit.verify import audit_chain_verify
from audit.models import AuditHead


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain (verify) or print its head (head)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["verify", "head"])
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, action, **options):
        if action == "head":
            head = AuditHead.objects.filter(pk=1).first()
            data = {"seq": head.seq if head else 0, "hash": head.hash if head else ""}
            self.stdout.write(json.dumps(data) if options["json"] else f"#{data['seq']} {data['hash']}")
            return
        report = audit_chain_verify()
        if options["json"]:
            self.stdout.write(json.dumps({"ok": report.ok, "records": report.records, "head_seq": report.head_seq,
                                          "head_hash": report.head_hash, "bad_seq": report.bad_seq,
                                          "problem": report.problem}))
        if not report.ok:
            raise CommandError(f"audit chain broken at record #{report.bad_seq}: {report.problem}")
        if not options["json"]:
            self.stdout.write(f"audit chain OK: {report.records} records, head #{report.head_seq} {report.head_hash}")
