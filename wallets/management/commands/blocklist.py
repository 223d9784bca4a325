"""manage.py blocklist: the address blocklist (docs/operations.md, "Address blocklist")."""
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.actors import command_actor
from gateway.errors import DomainError
from wallets.blocklist import address_normalise, blocked_address_add, blocked_address_deactivate, blocklist_import
from wallets.models import BlockedAddress


class Command(BaseCommand):
    help = ("The address blocklist. import --csv FILE (columns address,reason) | --ofac-xml FILE (OFAC's sdn.xml or "
            "sdn_advanced.xml: its EVM digital currency addresses) [--dry-run]; list [--all] [--json]; check ADDRESS; "
            "add ADDRESS --reason R; remove ADDRESS --reason R. Re-importing a file adds nothing.")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        imp = sub.add_parser("import")
        group = imp.add_mutually_exclusive_group(required=True)
        group.add_argument("--csv", dest="csv_file")
        group.add_argument("--ofac-xml", dest="ofac_file")
        imp.add_argument("--dry-run", action="store_true")
        imp.add_argument("--json", action="store_true")
        lst = sub.add_parser("list")
        lst.add_argument("--all", action="store_true", help="deactivated addresses too")
        lst.add_argument("--json", action="store_true")
        chk = sub.add_parser("check")
        chk.add_argument("address")
        chk.add_argument("--json", action="store_true")
        for name in ("add", "remove"):
            cmd = sub.add_parser(name)
            cmd.add_argument("address")
            cmd.add_argument("--reason", required=True)

    def handle(self, *args, action, **options):
        try:
            getattr(self, f"_{action}")(**options)
        except DomainError as exc:
            raise CommandError(exc.message) from exc

    def _import(self, *, csv_file=None, ofac_file=None, dry_run=False, json=False, **_):
        path = Path(csv_file or ofac_file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        source = BlockedAddress.Source.CSV if csv_file else BlockedAddress.Source.OFAC
        result = blocklist_import(source=source, data=data, actor=command_actor("blocklist import"), dry_run=dry_run)
        if json:
            self.stdout.write(_dumps(result.as_json()))
            return
        verb = "would add" if dry_run else "added"
        self.stdout.write(f"{path.name}: {result.read} EVM addresses read, {verb} {result.added}, "
                          f"{result.already_blocked} already blocked, {result.deactivated_kept} deactivated by staff "
                          f"(left so)")
        for why, count in sorted(result.skipped.items()):
            self.stdout.write(f"  skipped {count}: {why}")

    def _list(self, *, all=False, json=False, **_):
        rows = BlockedAddress.objects.order_by("address")
        if not all:
            rows = rows.filter(active=True)
        listed = [{"address": r.address, "source": r.source, "reason": r.reason, "list_reference": r.list_reference,
                   "active": r.active, "added_at": r.added_at.isoformat(), "added_by": r.added_by} for r in rows]
        if json:
            self.stdout.write(_dumps(listed))
            return
        for r in listed:
            state = "" if r["active"] else " (deactivated)"
            self.stdout.write(f"{r['address']}  {r['source']:6}  {r['list_reference'] or '-'}  {r['reason']}{state}")
        self.stdout.write(f"{len(listed)} addresses")

    def _check(self, *, address, json=False, **_):
        normalised = address_normalise(address)
        if normalised is None:
            raise CommandError("an address is 0x followed by 40 hexadecimal digits")
        row = BlockedAddress.objects.filter(address=normalised).first()
        blocked = bool(row and row.active)
        if json:
            self.stdout.write(_dumps({"address": normalised, "blocked": blocked,
                                      "source": row.source if row else None, "reason": row.reason if row else None,
                                      "list_reference": row.list_reference if row else None}))
        elif row is None:
            self.stdout.write(f"{normalised}: not blocked")
        else:
            self.stdout.write(f"{normalised}: {'BLOCKED' if blocked else 'not blocked (deactivated)'} "
                              f"({row.source}, {row.list_reference or '-'}): {row.reason}")

    def _add(self, *, address, reason, **_):
        row = blocked_address_add(address=address, reason=reason, actor=command_actor("blocklist add"))
        self.stdout.write(f"{row.address}: blocked")

    def _remove(self, *, address, reason, **_):
        row = BlockedAddress.objects.filter(address=address_normalise(address) or "").first()
        if row is None:
            raise CommandError(f"{address} is not on the blocklist")
        blocked_address_deactivate(blocked=row, actor=command_actor("blocklist remove"), reason=reason)
        self.stdout.write(f"{row.address}: deactivated")


def _dumps(value) -> str:
    return json.dumps(value, indent=2)
