"""`manage.py reconcile [--chain CODE] [--address 0x... ...] [--batch N] [--json]`: reconcile now.

Compares the on-chain balances of the deposit addresses with the recorded transfers at each network's reconciliation
block (wallets/chain/reconcile.py) and records each new difference as a BalanceDiscrepancy, as the beat task
`reconcile_balances` does every 10 minutes. Safe to run beside it: a difference is recorded once. Prints one line per
network (or, with --json, one JSON object: {network code: summary}) and the open discrepancies' count; exits 1 when a
network could not be reconciled (RPC unavailable or refusing).
"""
import json

from django.core.management.base import BaseCommand, CommandError

from wallets.chain.reconcile import DEFAULT_BATCH, network_reconcile
from wallets.chain.scanner import rpc_client_or_none
from wallets.models import BalanceDiscrepancy, DepositAddress, Network


class Command(BaseCommand):
    help = "Reconcile the deposit addresses' on-chain balances with the recorded transfers; record the differences."

    def add_arguments(self, parser):
        parser.add_argument("--chain", metavar="NETWORK_CODE", help="only this network (default: every active one)")
        parser.add_argument("--address", action="append", default=[], metavar="0x...",
                            help="only this deposit address (repeatable; default: see wallets/chain/reconcile.py)")
        parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, metavar="N", help="addresses per RPC batch")
        parser.add_argument("--json", dest="as_json", action="store_true", help="print one JSON object")

    def handle(self, *args, chain, address, batch, as_json, **options):
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        if chain:
            networks = list(Network.objects.filter(code=chain))
            if not networks:
                codes = ", ".join(Network.objects.values_list("code", flat=True))
                raise CommandError(f"no network {chain!r} (codes: {codes})")
        else:
            networks = list(Network.objects.filter(is_active=True).order_by("id"))
        addresses = None
        if address:
            wanted = {a.strip().lower() for a in address}
            addresses = list(DepositAddress.objects.filter(address__in=wanted).order_by("id"))
            unknown = wanted - {a.address for a in addresses}
            if unknown:
                raise CommandError(f"not our deposit address: {', '.join(sorted(unknown))}")

        summaries, failed = {}, False
        for network in networks:
            client = rpc_client_or_none(network)
            if client is None:
                if chain:
                    raise CommandError(f"no RPC URL for {network.code}: set {network.rpc_env}")
                continue
            summary = network_reconcile(network=network, client=client, addresses=addresses, batch=batch)
            summaries[network.code] = summary.as_json()
            failed |= summary.status in ("unavailable", "error")
            if not as_json:
                self.stdout.write(
                    f"{network.code}: {summary.status} at block {summary.block_number}, {summary.addresses} addresses,"
                    f" {summary.balances} balances checked, {summary.differences} differences ({summary.recorded} new),"
                    f" {summary.skipped_pending} skipped (transfers not final yet), {summary.seconds:.2f} s"
                    + (f": {summary.error}" if summary.error else "")
                )
        open_count = BalanceDiscrepancy.objects.filter(resolved_at__isnull=True).count()
        if as_json:
            self.stdout.write(json.dumps({"networks": summaries, "open_discrepancies": open_count}))
        else:
            self.stdout.write(f"open discrepancies: {open_count}")
        if failed:
            raise CommandError("some networks could not be reconciled", returncode=1)
