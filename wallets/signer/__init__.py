"""The signer boundary: the only place where private keys exist.

Everything that needs a signature goes through this narrow interface:

    signer().address(key_ref)                                    -> "0x..." (lower case)
    signer().sign(transaction, key_ref=...)                      -> SignedTransaction(raw, tx_hash, sender)
    signer().sign_authorization(key_ref=..., chain_id=..., address=..., nonce=...) -> SignedAuthorization (EIP-7702)

A key is named by a `key_ref`, an opaque string. The local backend (`wallets.signer.local.LocalSigner`, the default)
reads it as a BIP32 path of the master seed: the hot wallet of a network is `m/44'/60'/1'/0/<chain id>`
(`hot_wallet_key_ref`), deposit address i is `m/44'/60'/0'/0/<i>` (`deposit_key_ref`). It decrypts the seed with
GATEWAY_KEK (wallets.crypto, through wallets.services.wallet_mnemonic_reveal) the first time it needs a key and keeps
the derived keys in its own memory.

`settings.GATEWAY_SIGNER_BACKEND` (dotted path of a class with these three methods, built without arguments) selects
the backend: this is where an HSM or a cloud KMS plugs in (keys named by their key_ref, secp256k1 signatures over the
same EIP-155 / EIP-1559 / EIP-7702 payloads), and nothing else in the gateway changes.

Only processes consuming the Celery queue `signer` (and the wallet's own management commands) ever call `signer()`;
this module imports no backend at import time, so the web tier and the other workers never load the seed, the KEK
or a key (tests/wallets/test_signer.py checks that the web app runs without GATEWAY_KEK and never imports
wallets.signer.local).

The transaction given to `sign` is a plain dict in eth-account's field names: `type` (0 legacy, 2 EIP-1559,
4 EIP-7702), `chainId`, `nonce`, `to`, `value`, `data` (bytes), `gas`, and `gasPrice` (type 0) or `maxFeePerGas` and
`maxPriorityFeePerGas` (types 2 and 4), plus `authorizationList` (type 4: a list of `SignedAuthorization.as_json()`).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

HOT_WALLET_ACCOUNT = 1  # m/44'/60'/1'/0/<chain id>: one hot wallet per chain, apart from the deposit account 0
DEPOSIT_ACCOUNT = 0  # m/44'/60'/0'/0/<index>: the deposit addresses (wallets/hd.py)
MAX_INDEX = 2**31 - 1
DEFAULT_BACKEND = "wallets.signer.local.LocalSigner"


class SignerError(Exception):
    """The signer cannot sign this (unknown key_ref, a transaction it refuses). Never contains key material."""


def hot_wallet_key_ref(*, chain_id: int) -> str:
    """The key of a network's hot wallet: m/44'/60'/1'/0/<chain id> (the same address on every installation restored
    from the same mnemonic, whatever the database ids)."""
    if not 0 < chain_id <= MAX_INDEX:
        raise SignerError(f"chain id {chain_id} does not fit a non-hardened BIP32 index")
    return f"m/44'/60'/{HOT_WALLET_ACCOUNT}'/0/{chain_id}"


def deposit_key_ref(*, index: int) -> str:
    """The key of deposit address `index` (for sweeps and EIP-7702 authorizations): m/44'/60'/0'/0/<index>."""
    if not 0 <= index <= MAX_INDEX:
        raise SignerError(f"address index {index} is out of range")
    return f"m/44'/60'/{DEPOSIT_ACCOUNT}'/0/{index}"


@dataclass(frozen=True)
class SignedTransaction:
    raw: bytes  # what eth_sendRawTransaction takes
    tx_hash: str  # 0x + 64 lower-case hex
    sender: str  # 0x + 40 lower-case hex: the address of the key that signed


@dataclass(frozen=True)
class SignedAuthorization:
    """An EIP-7702 authorization tuple, signed: public data, stored as JSON in a type-4 transaction's list."""

    chain_id: int
    address: str
    nonce: int
    y_parity: int
    r: int
    s: int

    def as_json(self) -> dict:
        return {"chainId": self.chain_id, "address": self.address, "nonce": self.nonce, "yParity": self.y_parity,
                "r": hex(self.r), "s": hex(self.s)}

    @classmethod
    def from_json(cls, data: dict) -> SignedAuthorization:
        return cls(chain_id=int(data["chainId"]), address=str(data["address"]).lower(), nonce=int(data["nonce"]),
                   y_parity=int(data["yParity"]), r=int(str(data["r"]), 0), s=int(str(data["s"]), 0))


class Signer(Protocol):
    def address(self, key_ref: str) -> str: ...

    def sign(self, transaction: dict, *, key_ref: str) -> SignedTransaction: ...

    def sign_authorization(self, *, key_ref: str, chain_id: int, address: str, nonce: int) -> SignedAuthorization: ...


_lock = threading.Lock()
_instance: Signer | None = None


def signer() -> Signer:
    """The process's signer backend (settings.GATEWAY_SIGNER_BACKEND), built on first use."""
    global _instance
    with _lock:
        if _instance is None:
            _instance = import_string(getattr(settings, "GATEWAY_SIGNER_BACKEND", "") or DEFAULT_BACKEND)()
        return _instance


def signer_reset() -> None:
    """Forget the backend and the keys it holds (tests; a KEK rotation needs no reset: derived keys do not change)."""
    global _instance
    with _lock:
        _instance = None
