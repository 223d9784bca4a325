"""Chain helpers of the sweep tests: deploy contracts, send transactions signed with anvil's public keys (and fresh
keys standing for deposit addresses), EIP-7702 authorizations included. Test code only: no gateway key here."""
import time

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from wallets import devchain
from wallets.devchain import rpc

CONTRACTS = devchain.REPO_ROOT / "contracts"


def receipt_of(url: str, tx_hash: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while (receipt := rpc(url, "eth_getTransactionReceipt", [tx_hash])) is None:
        assert time.monotonic() < deadline, f"{tx_hash} not mined"
        time.sleep(0.02)
    return receipt


def send(url: str, key: str, *, to: str | None, data: bytes = b"", gas: int = 3_000_000, authorizations=None,
         value: int = 0) -> dict:
    """Sign with `key` and send; returns the receipt (reverted ones too)."""
    account = Account.from_key(key)
    tx = {"chainId": devchain.CHAIN_ID, "nonce": int(rpc(url, "eth_getTransactionCount", [account.address,
                                                                                        "pending"]), 16),
          "gas": gas, "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9, "value": value, "data": data}
    if to:
        tx["to"] = to_checksum_address(to)
    if authorizations:
        tx["authorizationList"] = authorizations
    signed = account.sign_transaction(tx)
    tx_hash = rpc(url, "eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
    return receipt_of(url, tx_hash)


def deploy(url: str, key: str, source: str, name: str, args_types=(), args=()) -> str:
    bytecode = bytes.fromhex(devchain.compile_contract(CONTRACTS / source, name)["bytecode"][2:])
    receipt = send(url, key, to=None, data=bytecode + abi_encode(list(args_types), list(args)))
    assert int(receipt["status"], 16) == 1
    return receipt["contractAddress"].lower()


def call_data(signature: str, types: list[str], args: list) -> bytes:
    return function_signature_to_4byte_selector(signature) + abi_encode(types, args)


def authorize(key: str, *, delegate: str, nonce: int | None = None, url: str | None = None) -> dict:
    account = Account.from_key(key)
    if nonce is None:
        nonce = int(rpc(url, "eth_getTransactionCount", [account.address, "latest"]), 16)
    return account.sign_authorization({"chainId": devchain.CHAIN_ID, "address": to_checksum_address(delegate),
                                       "nonce": nonce})


def mint(url: str, key: str, token: str, to: str, amount: int) -> None:
    receipt = send(url, key, to=token, data=call_data("mint(address,uint256)", ["address", "uint256"], [to, amount]))
    assert int(receipt["status"], 16) == 1


def balance_of(url: str, token: str, owner: str) -> int:
    return devchain.erc20_balance_of(url, token, owner)
