"""The sweeper contract (contracts/Sweeper.sol) as the gateway sees it: its bytecode, the calldata of a batch
sweep, the EIP-7702 delegation designator a delegated deposit address carries, and what a receipt says was swept.
No key, no database: wallets knows chains and contracts; settlements decides what to sweep (docs/money-out.md)."""
from pathlib import Path

import rlp
from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector, keccak, to_canonical_address

SOURCE = Path(__file__).resolve().parent.parent / "contracts" / "Sweeper.sol"
NAME = "Sweeper"
SWEEP_MANY = function_signature_to_4byte_selector("sweepMany(address,address[],uint256[])")
SWEEP = function_signature_to_4byte_selector("sweep(address,uint256)")
TRANSFER = function_signature_to_4byte_selector("transfer(address,uint256)")
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
SWEEP_SKIPPED_TOPIC = "0x" + keccak(text="SweepSkipped(address)").hex()
DELEGATION_PREFIX = "0xef0100"  # EIP-7702: the code of a delegated EOA is 0xef0100 || the delegate's address

# Gas limits (what is not used is not paid): the intrinsic cost of an authorization is 25,000 (PER_EMPTY_ACCOUNT_COST);
# a delegated sweep costs about 13,000 (bench/sweeps.py), a first one a little more (cold delegate code).
BATCH_BASE_GAS = 60_000
PER_DEPOSIT_GAS = 40_000
PER_AUTHORIZATION_GAS = 30_000
TOKEN_TRANSFER_GAS = 100_000  # the non-7702 fallback: one ERC-20 transfer from a deposit address
TOPUP_GAS = 50_000  # the fallback's native top-up (more than 21,000: the address may run a delegate's receive())


def sweeper_artifact() -> dict:
    """{"abi", "bytecode"} of contracts/Sweeper.sol, compiled by the pinned solc (cached in build/contracts/)."""
    from wallets.devchain import compile_contract

    return compile_contract(SOURCE, NAME)


def create_address(sender: str, nonce: int) -> str:
    """The address of the contract that `sender` creates with the transaction of nonce `nonce` (CREATE)."""
    return "0x" + keccak(rlp.encode([to_canonical_address(sender), nonce]))[12:].hex()


def sweeper_deploy_data(*, hot_wallet: str) -> bytes:
    """The creation code of one network's Sweeper, with its hot wallet fixed in the bytecode."""
    bytecode = bytes.fromhex(sweeper_artifact()["bytecode"][2:])
    return bytecode + abi_encode(["address"], [hot_wallet])


def sweep_many_calldata(*, token: str, deposits: list[str], amounts: list[int]) -> bytes:
    return SWEEP_MANY + abi_encode(["address", "address[]", "uint256[]"], [token, deposits, amounts])


def token_transfer_calldata(*, to: str, amount: int) -> bytes:
    return TRANSFER + abi_encode(["address", "uint256"], [to, amount])


def sweep_gas_limit(*, deposits: int, authorizations: int) -> int:
    return BATCH_BASE_GAS + deposits * PER_DEPOSIT_GAS + authorizations * PER_AUTHORIZATION_GAS


def delegation_code(sweeper: str) -> str:
    return DELEGATION_PREFIX + sweeper.lower()[2:]


def delegated_to(code: str, sweeper: str) -> bool:
    """True when `code` (eth_getCode of an address) is the delegation designator to `sweeper`."""
    return (code or "0x").lower() == delegation_code(sweeper)


def _topic_address(topic: str) -> str:
    return "0x" + topic[-40:].lower()


def swept_amounts(receipt: dict, *, token: str, hot_wallet: str) -> dict[str, int]:
    """{deposit address: base units of `token` it sent to the hot wallet} in this receipt (the token's Transfer
    logs, the only truth: a skipped deposit has none)."""
    moved: dict[str, int] = {}
    for log in receipt.get("logs") or []:
        topics = log.get("topics") or []
        if (log.get("address", "").lower() == token.lower() and len(topics) == 3 and topics[0] == TRANSFER_TOPIC
                and _topic_address(topics[2]) == hot_wallet.lower()):
            source = _topic_address(topics[1])
            moved[source] = moved.get(source, 0) + int(log["data"], 16)
    return moved
