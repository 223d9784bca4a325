"""Sweeps on anvil (Prague): gas per swept deposit and sweep throughput of contracts/Sweeper.sol.

    .venv/bin/python bench/sweeps.py [--sizes 1,10,50,100] [--throughput 1000] [--no-record]

Starts a fresh anvil on a free 127.0.0.1 port with the test tokens, deploys a Sweeper whose hot wallet is anvil's
account 1, and for each batch size n:
- first sweep: n fresh deposit EOAs holding test USDT, each signing its EIP-7702 authorization (eth-account, what
  the local signer uses), swept by ONE type-4 transaction of the hot wallet (`sweepMany`);
- already delegated: the same n addresses paid again and swept by one transaction without authorizations.
It prints gasUsed / n (the whole transaction's gas, 21,000 intrinsic included, shared by the n deposits).
Throughput: `--throughput` deposits (first sweeps) in batches of 100, the authorizations signed and the
transactions sent back to back in automine mode; deposits per minute from the first signature to the last receipt.
The figures are the chain's and the contract's: the database rows and the transaction manager's passes around them
are measured by the tests, not here. Appends a section to docs/benchmarks.md unless --no-record."""
import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings.test")

import django  # noqa: E402

django.setup()

from eth_abi import encode as abi_encode  # noqa: E402
from eth_account import Account  # noqa: E402
from eth_utils import function_signature_to_4byte_selector, to_checksum_address  # noqa: E402

from tests.chain import running_anvil  # noqa: E402
from wallets import devchain, sweeper  # noqa: E402
from wallets.devchain import rpc  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
ONE = 10**18


class Sender:
    def __init__(self, url: str, key: str):
        self.url, self.account = url, Account.from_key(key)
        self.nonce = int(rpc(url, "eth_getTransactionCount", [self.account.address, "pending"]), 16)

    def send(self, *, to: str | None, data: bytes, gas: int, authorizations=None) -> str:
        tx = {"chainId": devchain.CHAIN_ID, "nonce": self.nonce, "gas": gas, "maxFeePerGas": 10**11,
              "maxPriorityFeePerGas": 10**9, "value": 0, "data": data}
        if to:
            tx["to"] = to_checksum_address(to)
        if authorizations:
            tx["authorizationList"] = authorizations
        signed = self.account.sign_transaction(tx)
        self.nonce += 1
        return rpc(self.url, "eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])


def receipt(url: str, tx_hash: str) -> dict:
    while (found := rpc(url, "eth_getTransactionReceipt", [tx_hash])) is None:
        time.sleep(0.01)
    assert int(found["status"], 16) == 1, found
    return found


def mint_batch(url: str, minter: Sender, token: str, addresses: list[str]) -> None:
    for i in range(0, len(addresses), 500):
        data = function_signature_to_4byte_selector("mintBatch(address[],uint256)") + abi_encode(
            ["address[]", "uint256"], [addresses[i:i + 500], 10 * ONE])
        receipt(url, minter.send(to=token, data=data, gas=30_000_000))


def sweep(url: str, hot: Sender, contract: str, token: str, accounts: list, *, authorize: bool) -> dict:
    auths = ([a.sign_authorization({"chainId": devchain.CHAIN_ID, "address": to_checksum_address(contract),
                                    "nonce": 0}) for a in accounts] if authorize else None)
    data = sweeper.sweep_many_calldata(token=token, deposits=[a.address.lower() for a in accounts],
                                       amounts=[10 * ONE] * len(accounts))
    gas = sweeper.sweep_gas_limit(deposits=len(accounts), authorizations=len(accounts) if authorize else 0)
    return receipt(url, hot.send(to=contract, data=data, gas=gas, authorizations=auths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,50,100")
    parser.add_argument("--throughput", type=int, default=1000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    with running_anvil() as chain:
        url, token = chain.rpc_url, chain.tokens["usdt"]
        minter, hot = Sender(url, chain.private_keys[0]), Sender(url, chain.private_keys[1])
        creation = sweeper.sweeper_deploy_data(hot_wallet=chain.accounts[1])
        contract = receipt(url, minter.send(to=None, data=creation, gas=2_000_000))["contractAddress"].lower()

        rows = []
        for n in sizes:
            accounts = [Account.create() for _ in range(n)]
            mint_batch(url, minter, token, [a.address for a in accounts])
            first = sweep(url, hot, contract, token, accounts, authorize=True)
            assert all(devchain.erc20_balance_of(url, token, a.address) == 0 for a in accounts)
            mint_batch(url, minter, token, [a.address for a in accounts])
            again = sweep(url, hot, contract, token, accounts, authorize=False)
            assert all(devchain.erc20_balance_of(url, token, a.address) == 0 for a in accounts)
            rows.append((n, int(first["gasUsed"], 16) / n, int(again["gasUsed"], 16) / n))
            print(f"batch {n:>4}: first sweep {rows[-1][1]:>9,.0f} gas/deposit, delegated {rows[-1][2]:>9,.0f}",
                  flush=True)

        total = args.throughput
        accounts = [Account.create() for _ in range(total)]
        mint_batch(url, minter, token, [a.address for a in accounts])
        started = time.monotonic()
        hashes = []
        for i in range(0, total, 100):
            batch = accounts[i:i + 100]
            auths = [a.sign_authorization({"chainId": devchain.CHAIN_ID, "address": to_checksum_address(contract),
                                           "nonce": 0}) for a in batch]
            data = sweeper.sweep_many_calldata(token=token, deposits=[a.address.lower() for a in batch],
                                               amounts=[10 * ONE] * len(batch))
            hashes.append(hot.send(to=contract, data=data, authorizations=auths,
                                   gas=sweeper.sweep_gas_limit(deposits=len(batch), authorizations=len(batch))))
        for tx_hash in hashes:
            receipt(url, tx_hash)
        seconds = time.monotonic() - started
        swept = sum(1 for a in accounts[:: max(1, total // 50)]
                    if devchain.erc20_balance_of(url, token, a.address) == 0)
        assert swept == len(accounts[:: max(1, total // 50)])
        per_minute = total / seconds * 60
        print(f"throughput: {total} deposits (first sweeps, batches of 100) in {seconds:.2f} s = "
              f"{per_minute:,.0f} deposits/min", flush=True)

    if args.no_record:
        return
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    lines = [f"\n## {now} - sweeps (bench/sweeps.py)\n",
             f"Machine: {os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}; anvil (Prague), "
             "automine.\n",
             "| batch | gas per deposit, first sweep (7702 authorization) | gas per deposit, already delegated |",
             "|---:|---:|---:|"]
    lines += [f"| {n} | {first:,.0f} | {again:,.0f} |" for n, first, again in rows]
    lines.append(f"\nThroughput: {total:,} deposits swept (first sweeps, batches of 100, authorizations signed in "
                 f"the loop) in {seconds:.2f} s: **{per_minute:,.0f} deposits/min**.\n")
    with DOC.open("a") as doc:
        doc.write("\n".join(lines))


if __name__ == "__main__":
    main()
