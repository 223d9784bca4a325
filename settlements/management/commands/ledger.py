"""`manage.py ledger check [--chain]` / `ledger rebuild` / `ledger topup ...` (docs/ledger.md, docs/money-out.md)."""
import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.actors import command_actor
from audit.services import audit_record
from gateway.errors import DomainError
from settlements.hotcold.reconcile import wallets_reconcile
from settlements.hotcold.services import hot_wallet_topup_record, topup_transaction_verify
from settlements.selectors import ledger_problems
from settlements.services import ledger_balances_rebuild
from wallets.chain.rpc import RpcError, RpcUnavailable
from wallets.chain.scanner import rpc_client_or_none
from wallets.models import Network, Token


class Command(BaseCommand):
    help = ("check: every journal transaction balances and every running balance equals its entries (exit 1 and "
            "print each problem otherwise); with --chain, also the hot wallets and cold addresses on the chain "
            "against the ledger (differences recorded as BalanceDiscrepancy rows). rebuild: recompute the running "
            "balances from the entries. topup: record funds an operator sent to the hot wallet.")

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["check", "rebuild", "topup"])
        parser.add_argument("--chain", action="store_true",
                            help="check: also reconcile the hot wallets and cold addresses with the chain")
        parser.add_argument("--network", metavar="NETWORK_CODE", help="topup (required), check --chain (one network)")
        parser.add_argument("--token", metavar="CURRENCY|native", help="topup: the token's currency, or native")
        parser.add_argument("--amount", type=int, metavar="BASE_UNITS", help="topup: base units (an integer)")
        parser.add_argument("--tx-hash", metavar="0x...",
                            help="topup: the funding transaction (recording it twice changes nothing)")
        parser.add_argument("--reason", help="topup: why (kept in the journal's memo)")
        parser.add_argument("--from", dest="source", choices=["outside", "cold"], default="outside",
                            help="topup: from outside (operator funding, default) or from the token's cold address")
        parser.add_argument("--no-amount-check", action="store_true",
                            help="topup: only check that the transaction succeeded (native coin sent by a contract's "
                                 "internal call, which the transaction's own value does not show)")
        parser.add_argument("--json", dest="as_json", action="store_true")

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
        elif action == "topup":
            self._topup(**options)
        else:
            self._check(**options)

    def _network(self, code: str | None) -> Network:
        if not code:
            raise CommandError("--network is required")
        network = Network.objects.filter(code=code).first()
        if network is None:
            codes = ", ".join(Network.objects.values_list("code", flat=True))
            raise CommandError(f"no network {code!r} (codes: {codes})")
        return network

    def _topup(self, *, network, token, amount, tx_hash, reason, source, no_amount_check, as_json, **_):
        network = self._network(network)
        if not token:
            raise CommandError("--token is required (a currency such as usdt, or native)")
        token_row = None
        if token.lower() != "native":
            token_row = Token.objects.filter(network=network, currency=token.lower()).first()
            if token_row is None:
                raise CommandError(f"--token: {network.code} has no token {token!r}")
        if amount is None or amount <= 0:
            raise CommandError("--amount must be a positive integer of base units")
        if not tx_hash or not (tx_hash.startswith("0x") and len(tx_hash) == 66):
            raise CommandError("--tx-hash must be the funding transaction's hash (0x and 64 hex digits)")
        if not reason:
            raise CommandError("--reason is required")
        try:
            int(tx_hash, 16)
        except ValueError:
            raise CommandError("--tx-hash must be the funding transaction's hash (0x and 64 hex digits)") from None
        client = rpc_client_or_none(network)
        if client is None:
            raise CommandError(f"no RPC URL for {network.code}: set {network.rpc_env}")
        try:
            block_number = topup_transaction_verify(network=network, client=client, token=token_row, tx_hash=tx_hash,
                                                    amount_base_units=amount, check_amount=not no_amount_check)
            topup = hot_wallet_topup_record(network=network, token=token_row, amount_base_units=amount,
                                            tx_hash=tx_hash, block_number=block_number, reason=reason,
                                            from_cold=source == "cold", actor=command_actor("ledger topup"))
        except DomainError as exc:
            raise CommandError(f"--{(exc.param or 'network').replace('_', '-')}: {exc.message}") from None
        except (RpcError, RpcUnavailable) as exc:
            raise CommandError(f"the node of {network.code} did not answer: {exc}") from None
        result = {"topup": topup.id, "journal_transaction": topup.journal_id, "network": network.code,
                  "token": token.lower(), "amount": str(topup.amount_base_units), "tx_hash": topup.tx_hash,
                  "block_number": topup.block_number}
        self.stdout.write(json.dumps(result) if as_json else
                          f"top-up recorded: journal transaction {topup.journal_id} ({topup.amount_base_units} base "
                          f"units of {token.lower()} on {network.code}, {topup.tx_hash} in block {block_number})")

    def _check(self, *, chain, network, as_json, **_):
        problems = ledger_problems()
        for problem in problems:
            self.stderr.write(problem)
        failed = bool(problems)
        if chain:
            networks = [self._network(network)] if network else list(
                Network.objects.filter(is_active=True).order_by("id"))
            for row in networks:
                client = rpc_client_or_none(row)
                if client is None:
                    if network:
                        raise CommandError(f"no RPC URL for {row.code}: set {row.rpc_env}")
                    continue
                summary = wallets_reconcile(network=row, client=client)
                if summary.status == "no_hot_wallet":
                    continue
                failed |= summary.status in ("unavailable", "error") or summary.differences > 0
                self.stdout.write(json.dumps(summary.as_json()) if as_json else
                                  f"{row.code} wallets: {summary.status} at block {summary.block_number}, "
                                  f"{summary.balances} balances checked, {summary.differences} differences "
                                  f"({summary.recorded} new)"
                                  + "".join(f"; skipped {s}" for s in summary.skipped)
                                  + (f": {summary.error}" if summary.error else ""))
        if failed:
            raise CommandError(f"ledger check: {len(problems)} problem(s) in the ledger"
                               + (", or the wallets differ from the chain" if chain else ""), returncode=1)
        self.stdout.write("ledger check: every journal transaction balances; running balances match the entries"
                          + ("; the wallets match the chain" if chain else ""))
