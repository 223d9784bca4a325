"""`manage.py scan --chain CODE --from-block N [--to-block M]`: backfill or rescan a chain.

Rewinds the network's cursor to N-1 (never forward: a cursor below N-1 stays, no block is ever skipped) and steps the
scanner until the cursor reaches M (or the node's head). Idempotent: a transfer already recorded is never recorded
twice (unique per transaction, log and block hash). A running `watch` or beat scanner is not disturbed: they take
turns under the per-network lock and continue from the same cursor. Progress goes to stderr, one JSON summary line
to stdout.
"""
import json
import time

from django.core.management.base import BaseCommand, CommandError

from audit.actors import command_actor
from wallets.chain.scanner import BACK_OFF, Status, network_scan, rpc_client_or_none
from wallets.chain.selectors import chain_cursor_get
from wallets.chain.services import chain_rescan_request
from wallets.models import Network

MAX_BACK_OFFS = 20  # in a row (the RPC unavailable, or another scanner's lock): about a minute, then give up


def _block(value: str) -> int:
    number = int(value, 0)
    if number < 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Backfill or rescan a chain from --from-block (cursor rewound to N-1, never forward); idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--chain", required=True, metavar="NETWORK_CODE", help="bsc, devnet ...")
        parser.add_argument("--from-block", required=True, type=_block, metavar="N")
        parser.add_argument("--to-block", type=_block, default=None, metavar="M", help="default: the node's head")
        parser.add_argument("--reason", default="backfill or rescan (manage.py scan)",
                            help="why: kept in the audit trail")

    def handle(self, *args, chain, from_block, to_block, **options):
        network = Network.objects.filter(code=chain).first()
        if network is None:
            codes = ", ".join(Network.objects.values_list("code", flat=True))
            raise CommandError(f"no network {chain!r} (codes: {codes})")
        if to_block is not None and to_block < from_block:
            raise CommandError("--to-block is below --from-block")
        client = rpc_client_or_none(network)
        if client is None:
            raise CommandError(f"no RPC URL for {network.code}: set {network.rpc_env}")

        before = chain_cursor_get(network=network)
        cursor = chain_rescan_request(network=network, from_block=from_block, actor=command_actor("scan"),
                                      reason=options["reason"])
        if cursor.block_number < from_block - 1:
            self.stderr.write(
                f"scan {network.code}: the cursor is at {cursor.block_number}, below {from_block - 1}; scanning from "
                f"{cursor.block_number + 1} (blocks are never skipped)"
            )
        started, totals = time.monotonic(), {"steps": 0, "transfers_seen": 0, "transfers_finalized": 0,
                                              "transfers_orphaned": 0, "reorgs": 0}
        last = {}

        def progress(step):
            totals["steps"] += 1
            for key in ("transfers_seen", "transfers_finalized", "transfers_orphaned"):
                totals[key] += getattr(step, key)
            totals["reorgs"] += 1 if step.reorg_depth else 0
            last.update(step.as_json())
            if step.status == Status.SCANNED:
                self.stderr.write(
                    f"scan {network.code}: blocks {step.from_block}-{step.to_block}, {step.transfers_seen} new "
                    f"transfers, cursor {step.cursor}, head {step.head}, lag {step.lag}"
                )
            elif step.status != Status.IDLE:
                self.stderr.write(f"scan {network.code}: {step.status} {step.error}".rstrip())

        back_offs = 0
        while True:
            summary = network_scan(network=network, client=client, budget_seconds=60, to_block=to_block,
                                   on_step=progress)
            position = chain_cursor_get(network=network)
            done = (to_block is not None and position.block_number >= to_block) or summary.caught_up
            if done:
                break
            if summary.last_status == Status.ERROR:
                raise CommandError(f"scan {network.code}: {summary.error}")
            if summary.last_status in BACK_OFF or summary.last_status == Status.RETRY:
                back_offs += 1
                if back_offs > MAX_BACK_OFFS:
                    raise CommandError(f"scan {network.code}: giving up after {back_offs} back-offs "
                                       f"({summary.last_status}: {summary.error})")
                time.sleep(min(5.0, 0.1 * 2 ** back_offs))
            else:
                back_offs = 0

        self.stdout.write(json.dumps({
            "network": network.code,
            "from_block": from_block,
            "to_block": to_block,
            "cursor_before": before.block_number if before else None,
            "cursor": position.block_number,
            "head": position.head_number,
            "finalized": position.finalized_number,
            "lag": position.lag,
            **totals,
            "seconds": round(time.monotonic() - started, 3),
        }))
