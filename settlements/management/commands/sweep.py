"""manage.py sweep [--network CODE] [--dry-run] [--deploy] [--policy TOKEN ...]: one pass of the sweeper by hand
(what the beat task `settlements.tasks.run_sweeps` does), printing what it does or, with --dry-run, what it would do
(nothing written). --deploy queues the network's Sweeper contract (by its hot wallet) first; --policy sets a token's
sweep policy on --network first (also editable in admin)."""
from django.core.management.base import BaseCommand, CommandError

from audit.actors import command_actor
from gateway.errors import DomainError
from settlements import sweeps
from wallets.chain.scanner import rpc_client_or_none
from wallets.models import Network, Token


class Command(BaseCommand):
    help = "Sweep the deposit addresses' credited tokens to the hot wallet (or print what would be swept)."

    def add_arguments(self, parser):
        parser.add_argument("--network", help="Network code (default: every active network).")
        parser.add_argument("--dry-run", action="store_true", help="Print the batches; write and send nothing.")
        parser.add_argument("--deploy", action="store_true", help="Queue the network's Sweeper deployment first.")
        policy = parser.add_argument_group("--policy TOKEN: set that token's sweep policy on --network first")
        policy.add_argument("--policy", metavar="TOKEN", help="Token currency (usdt, usdc ...).")
        policy.add_argument("--min-amount", type=int, default=0, help="Base units worth the gas (0).")
        policy.add_argument("--window", type=int, default=60, help="Batching window in seconds (60).")
        policy.add_argument("--max-batch", type=int, default=100, help="Addresses per sweep transaction (100).")
        policy.add_argument("--max-gas-price", type=int, default=None, help="Gas price ceiling in wei (none).")

    def handle(self, *args, network=None, dry_run=False, deploy=False, policy=None, **options):
        if policy and dry_run:
            raise CommandError("--policy writes the policy: run it without --dry-run")
        if policy:
            token = Token.objects.filter(network__code=network, currency=policy.lower()).first() if network else None
            if token is None:
                raise CommandError("--policy needs --network and a token of that network")
            try:
                row = sweeps.sweep_policy_set(token=token, min_amount_base_units=options["min_amount"],
                                              batch_window_seconds=options["window"],
                                              max_batch_size=options["max_batch"],
                                              max_gas_price_wei=options["max_gas_price"],
                                              actor=command_actor("sweep --policy"))
            except DomainError as exc:
                raise CommandError(f"--policy: {exc.param}: {exc.message}") from None
            self.stdout.write(f"{network}: sweep policy of {policy}: min {row.min_amount_base_units}, window "
                              f"{row.batch_window_seconds} s, batch {row.max_batch_size}")
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
