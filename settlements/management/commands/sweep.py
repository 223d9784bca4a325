"""manage.py sweep [--network CODE] [--dry-run] [--deploy]: one pass of the sweeper by hand (what the beat task
`settlements.tasks.run_sweeps` does), printing what it does or, with --dry-run, what it would do (nothing written).
--deploy queues the network's Sweeper contract (by its hot wallet) first."""
from django.core.management.base import BaseCommand, CommandError

from audit.actors import command_actor
from settlements import sweeps
from wallets.chain.scanner import rpc_client_or_none
from wallets.models import Network


class Command(BaseCommand):
    help = "Sweep the deposit addresses' credited tokens to the hot wallet (or print what would be swept)."

    def add_arguments(self, parser):
        parser.add_argument("--network", help="Network code (default: every active network).")
        parser.add_argument("--dry-run", action="store_true", help="Print the batches; write and send nothing.")
        parser.add_argument("--deploy", action="store_true", help="Queue the network's Sweeper deployment first.")

    def handle(self, *args, network=None, dry_run=False, deploy=False, **options):
        networks = Network.objects.filter(is_active=True).order_by("id")
        if network:
            networks = Network.objects.filter(code=network)
            if not networks.exists():
                raise CommandError(f"no network {network!r}")
        for net in networks:
            client = rpc_client_or_none(net)
            if client is None:
                self.stdout.write(f"{net.code}: no RPC URL configured, skipped")
                continue
            if deploy and not dry_run:
                address = sweeps.sweeper_deploy(network=net, actor=command_actor("sweep --deploy"))
                self.stdout.write(f"{net.code}: Sweeper at {address} (queued if new)")
            summary = sweeps.sweeps_run(network=net, client=client, dry_run=dry_run)
            for line in summary.plans or [f"{net.code}: no sweep policy"]:
                self.stdout.write(line)
            if not dry_run:
                self.stdout.write(f"{net.code}: settled {summary.settled}, sent sweeps {summary.sent}")
