"""Sweep throughput of the whole gateway on anvil: paid intents swept through the database, the signer, the
transaction manager and the ledger (bench/sweeps.py measures the contract alone).

    .venv/bin/python bench/sweeps_system.py [--deposits 1000] [--batch 100] [--no-record]

Drops and re-creates the `gateway_bench_sweeps` database, migrates it, starts a fresh anvil (automine) with the test
tokens, creates a wallet, the devnet, a merchant, a hot wallet and its Sweeper. Then `--deposits` intents are paid in
full (one mintBatch of test USDT per 500 addresses, their final Transfer rows written as the scanner would, applied
by payments and posted to the ledger). Timed, from the first `sweeps_run` to the last sweep `settled`, in this one
process, as the workers would do it one after the other: the sweeper's pass (plans, batches, ledger), the signing
step (every authorization and transaction), the sender (broadcast, receipts), 3 blocks mined per round for finality,
and the settlement (receipts read, items, ledger). Prints deposits per minute; appends to docs/benchmarks.md."""
import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chain_common as cc  # noqa: E402

DB_NAME = "gateway_bench_sweeps"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deposits", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    cc.say(f"database {DB_NAME}: drop, create, migrate")
    cc.database_reset(DB_NAME)
    cc.django_setup(cc.bench_env(DB_NAME))
    import os

    from django.conf import settings
    from django.core.management import call_command
    from django.utils import timezone as dj_timezone
    from eth_abi import encode as abi_encode
    from eth_utils import function_signature_to_4byte_selector

    from payments import funding
    from payments.models import Charge
    from payments.services import PaymentIntentInput, payment_intent_create
    from settlements import sweeps
    from settlements.models import Sweep, SweepPolicy
    from settlements.services import ledger_post_charge_facts
    from tests.merchants.factories import MerchantFactory
    from wallets import devchain
    from wallets.chain.rpc import RpcClient
    from wallets.devchain import rpc
    from wallets.models import AddressActivity, OutgoingTransaction, Token, Transfer
    from wallets.outgoing import services as outgoing
    from wallets.signer import step as signer_step
    from wallets.services import wallet_init

    anvil, url = cc.start_anvil()
    try:
        call_command("migrate", "--no-input", verbosity=0)
        tokens = devchain.deploy_test_tokens(url)
        os.environ["GATEWAY_RPC_DEVNET"] = url
        settings.GATEWAY_DEVCHAIN_RPC_URL = url
        wallet_init()
        network = devchain.register_devnet(url, tokens)
        client = RpcClient.for_network(network)
        usdt = Token.objects.get(network=network, currency="usdt")
        merchant = MerchantFactory()
        hot = outgoing.sending_address_register(network=network, client=client)
        rpc(url, "anvil_setBalance", [hot.address, hex(10**24)])

        def manager_round() -> None:
            while signer_step.outgoing_transaction_sign_next() is not None:
                pass
            outgoing.outgoing_transactions_process(network=network, client=client)
            rpc(url, "anvil_mine", ["0x3"])
            outgoing.outgoing_transactions_process(network=network, client=client)

        sweeps.sweeper_deploy(network=network)
        cc.wait_until(lambda: manager_round() or not OutgoingTransaction.objects.exclude(status="final").exists(),
                      timeout=60, what="the Sweeper deployment")
        SweepPolicy.objects.create(network=network, token=usdt, min_amount_base_units=1, batch_window_seconds=0,
                                   max_batch_size=args.batch)

        cc.say(f"{args.deposits} paid intents")
        intents = [payment_intent_create(merchant=merchant, livemode=False,
                                         data=PaymentIntentInput(amount=1000, currency="usd", networks=["bsc"]))
                   for _ in range(args.deposits)]
        amount = 10 * 10**usdt.decimals
        addresses = [i.deposit_address.address for i in intents]
        minter = devchain.eth_accounts(url)[0]
        for start in range(0, len(addresses), 500):
            data = function_signature_to_4byte_selector("mintBatch(address[],uint256)") + abi_encode(
                ["address[]", "uint256"], [addresses[start:start + 500], amount])
            tx_hash = rpc(url, "eth_sendTransaction", [{"from": minter, "to": usdt.contract_address,
                                                        "data": "0x" + data.hex(), "gas": hex(25_000_000)}])
            cc.wait_until(lambda: rpc(url, "eth_getTransactionReceipt", [tx_hash]), timeout=60, what="the mint")
        now = dj_timezone.now()
        Transfer.objects.bulk_create(Transfer(
            network=network, token=usdt, tx_hash=f"0x{n + 1:064x}", log_index=0, block_number=1,
            block_hash="0x" + "1" * 64, from_address="0x" + "b" * 40, to_address=i.deposit_address.address,
            deposit_address=i.deposit_address, amount_base_units=amount, finalized_at=now) for n, i in enumerate(intents))
        AddressActivity.objects.bulk_create(AddressActivity(deposit_address=i.deposit_address) for i in intents)
        while funding.address_activity_process(limit=500):
            pass
        while ledger_post_charge_facts():
            pass
        assert Charge.objects.count() == args.deposits

        cc.say("sweeping")
        started = time.monotonic()
        rounds = 0
        while True:
            rounds += 1
            sweeps.sweeps_run(network=network, client=client)
            if not Sweep.objects.exclude(status="settled").exists() and Sweep.objects.exists() and \
                    not sweeps.sweep_balances(token=usdt):
                break
            manager_round()
        seconds = time.monotonic() - started
        swept = sum(s.swept_base_units for s in Sweep.objects.all())
        assert swept == amount * args.deposits, swept
        assert devchain.erc20_balance_of(url, usdt.contract_address, hot.address) == swept
        per_minute = args.deposits / seconds * 60
        txs = Sweep.objects.count()
        line = (f"{args.deposits} paid intents swept through the gateway (batches of {args.batch}: {txs} sweep "
                f"transactions, {rounds} rounds) in {seconds:.2f} s: **{per_minute:,.0f} deposits/min**")
        print(line, flush=True)
    finally:
        devchain.stop_anvil(anvil)

    if not args.no_record:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        cc.append_doc(f"\n## {stamp} - sweeps through the whole gateway (bench/sweeps_system.py)\n\n"
                      f"{cc.machine_line(cc.machine())}\n\n{line} (sweeper pass, signer, manager, settlement in one "
                      f"process, one after the other; 3 anvil blocks per round for finality).\n")


if __name__ == "__main__":
    main()
