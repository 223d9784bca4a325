"""`manage.py hot_cold [status] [--network CODE] [--json]`: the hot wallets' ledger balances against their floors and
ceilings, the cold addresses, transfers in flight and open alerts.
`manage.py hot_cold set --network CODE --token CURRENCY --floor N --ceiling N --cold-address 0x.. [--native-floor N]
[--gas-limit N] [--inactive]`: create or change a token's setting (validated as in the admin).
`manage.py hot_cold run`: what the beat task `hot_cold` does, now (docs/money-out.md, "Hot and cold")."""
import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.actors import command_actor
from audit.services import audit_record, model_snapshot
from settlements.hotcold.forms import HotColdSettingForm
from settlements.hotcold.models import HotColdSetting
from settlements.hotcold.selectors import hot_cold_positions
from settlements.hotcold.services import hot_cold_run
from wallets.models import Network, Token


class Command(BaseCommand):
    help = "Show (status), change (set) or run now (run) the hot/cold policy of the hot wallets."

    def add_arguments(self, parser):
        parser.add_argument("action", nargs="?", choices=["status", "set", "run"], default="status")
        parser.add_argument("--network", metavar="NETWORK_CODE")
        parser.add_argument("--token", metavar="CURRENCY", help="set: the token (usdt, usdc ...)")
        parser.add_argument("--floor", type=int, metavar="BASE_UNITS", help="set: alert below this")
        parser.add_argument("--ceiling", type=int, metavar="BASE_UNITS", help="set: above this, the surplus to cold")
        parser.add_argument("--native-floor", type=int, metavar="BASE_UNITS", help="set: gas alert below this")
        parser.add_argument("--cold-address", metavar="0x...", help="set: watch-only cold address")
        parser.add_argument("--gas-limit", type=int, metavar="GAS", help="set: gas limit of the transfer to cold")
        parser.add_argument("--inactive", action="store_true", help="set: switch the setting off")
        parser.add_argument("--json", dest="as_json", action="store_true")

    def handle(self, *args, action, network, as_json, **options):
        network_row = None
        if network:
            network_row = Network.objects.filter(code=network).first()
            if network_row is None:
                codes = ", ".join(Network.objects.values_list("code", flat=True))
                raise CommandError(f"no network {network!r} (codes: {codes})")
        if action == "set":
            return self._set(network_row, as_json=as_json, **options)
        if action == "run":
            run = hot_cold_run().as_json()
            self.stdout.write(json.dumps(run) if as_json else
                              f"settled {run['settled']} cold transfer(s), posted gas of {run['gas_posted']} "
                              f"transaction(s), started cold transfers {run['cold_transfers'] or 'none'}, alerts "
                              f"{run['alerts'] or 'unchanged'}")
            return
        positions = hot_cold_positions(network=network_row)
        if as_json:
            self.stdout.write(json.dumps([p.as_json() for p in positions]))
            return
        if not positions:
            self.stdout.write("no hot wallet with a hot/cold setting (manage.py hot_cold set ...)")
        for p in positions:
            self.stdout.write(
                f"{p.network} {p.asset:>8} hot {p.hot_address}: ledger {p.hot_balance}"
                f" (floor {p.floor}, ceiling {p.ceiling if p.ceiling is not None else '-'})"
                f"{' BELOW FLOOR' if p.below_floor else ''}{' ABOVE CEILING' if p.above_ceiling else ''}"
                + (f"; cold {p.cold_address}: ledger {p.cold_balance}" if p.cold_address else "")
                + (f"; in flight to cold {p.in_flight}" if p.in_flight else "")
                + ("; alert open" if p.alert_open else ""))

    def _set(self, network, *, token, floor, ceiling, native_floor, cold_address, gas_limit, inactive, as_json,
             **_):
        if network is None or not token:
            raise CommandError("set needs --network and --token")
        token_row = Token.objects.filter(network=network, currency=token.lower()).first()
        if token_row is None:
            raise CommandError(f"--token: {network.code} has no token {token!r}")
        instance = HotColdSetting.objects.filter(token=token_row).first()
        data = {"token": token_row.id, "is_active": not inactive}
        for name, value, current in (
                ("hot_floor_base_units", floor, instance and instance.hot_floor_base_units),
                ("hot_ceiling_base_units", ceiling, instance and instance.hot_ceiling_base_units),
                ("native_floor_base_units", native_floor, instance and instance.native_floor_base_units),
                ("cold_address", cold_address, instance and instance.cold_address),
                ("transfer_gas_limit", gas_limit, instance.transfer_gas_limit if instance else 100_000)):
            data[name] = value if value is not None else current if current is not None else (
                0 if name.endswith("floor_base_units") else "")
        before = model_snapshot(instance) if instance is not None else None  # validating changes the instance
        form = HotColdSettingForm(data=data, instance=instance)
        if not form.is_valid():
            errors = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in form.errors.items())
            raise CommandError(f"refused: {errors}")
        with transaction.atomic():
            row = form.save()
            audit_record(actor=command_actor("hot_cold set"), action="hot_cold_setting.set", obj=row, before=before,
                         after=model_snapshot(row))
        summary = {"token": token_row.currency, "network": network.code, "floor": str(row.hot_floor_base_units),
                   "ceiling": str(row.hot_ceiling_base_units), "native_floor": str(row.native_floor_base_units),
                   "cold_address": row.cold_address, "transfer_gas_limit": row.transfer_gas_limit,
                   "is_active": row.is_active}
        self.stdout.write(json.dumps(summary) if as_json else f"hot/cold setting saved: {summary}")
