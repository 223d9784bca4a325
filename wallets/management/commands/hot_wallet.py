"""`manage.py hot_wallet --network CODE [--json]`: register (once) and show a network's hot wallet.

The hot wallet of a network is m/44'/60'/1'/0/<chain id> of the master seed; its address comes from the signer, so
run this where the signer runs (with GATEWAY_KEK). Registering it starts the database-owned nonce sequence at the
node's pending nonce (wallets/outgoing/services.py `sending_address_register`). Idempotent: a registered hot wallet
is shown as it is. Fund the printed address with the chain's native coin to pay gas.
"""
import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.actors import command_actor
from audit.services import audit_record
from gateway.errors import DomainError
from wallets.chain.rpc import RpcError, RpcUnavailable
from wallets.chain.scanner import rpc_client_or_none
from wallets.models import Network
from wallets.outgoing.services import sending_address_register


class Command(BaseCommand):
    help = "Register (once) and show a network's hot wallet (run where the signer runs: it needs GATEWAY_KEK)."

    def add_arguments(self, parser):
        parser.add_argument("--network", required=True, metavar="NETWORK_CODE")
        parser.add_argument("--json", dest="as_json", action="store_true", help="print one JSON object")

    def handle(self, *args, network, as_json, **options):
        row = Network.objects.filter(code=network).first()
        if row is None:
            codes = ", ".join(Network.objects.values_list("code", flat=True))
            raise CommandError(f"no network {network!r} (codes: {codes})")
        client = rpc_client_or_none(row)
        if client is None:
            raise CommandError(f"no RPC URL for {row.code}: set {row.rpc_env}")
        try:
            with transaction.atomic():
                sending = sending_address_register(network=row, client=client)
                audit_record(actor=command_actor("hot_wallet"), action="hot_wallet.register", obj=sending,
                             after={"network": row.code, "address": sending.address, "key_ref": sending.key_ref})
        except DomainError as exc:
            raise CommandError(exc.message) from None
        except (RpcError, RpcUnavailable) as exc:
            raise CommandError(f"the node of {row.code} did not answer: {exc}") from None
        summary = {"network": row.code, "purpose": sending.purpose, "address": sending.address,
                   "key_ref": sending.key_ref, "next_nonce": sending.next_nonce}
        if as_json:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(f"{row.code} hot wallet {sending.address} ({sending.key_ref}), next nonce "
                              f"{sending.next_nonce}")
