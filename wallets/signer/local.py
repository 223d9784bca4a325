"""The local signer backend: keys derived from the encrypted master seed, held in this process's memory.

The seed is decrypted (GATEWAY_KEK, wallets.crypto through wallets.services.wallet_mnemonic_reveal) once per process,
when the first key is asked for; each key_ref's private key is derived once and kept in memory, never written,
logged or returned. Only processes on the `signer` Celery queue build this class (wallets/signer/__init__.py).
"""
import re
import threading

from bip_utils import Bip39Languages, Bip39SeedGenerator, Bip44, Bip44Changes, Bip44Coins
from django.views.decorators.debug import sensitive_variables
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from wallets import services as wallet_services

from . import MAX_INDEX, SignedAuthorization, SignedTransaction, SignerError

_PATH = re.compile(r"^m/44'/60'/(?P<account>[01])'/0/(?P<index>\d{1,10})$")


class LocalSigner:
    def __init__(self):
        self._lock = threading.Lock()
        self._accounts: dict[str, LocalAccount] = {}

    def address(self, key_ref: str) -> str:
        return self._account(key_ref).address.lower()

    def sign(self, transaction: dict, *, key_ref: str) -> SignedTransaction:
        account = self._account(key_ref)
        tx = dict(transaction)
        if tx.get("to"):
            tx["to"] = to_checksum_address(tx["to"])
        if tx.get("type") == 4:
            tx["authorizationList"] = [
                _authorization_for_eth_account(SignedAuthorization.from_json(a)) for a in tx.get("authorizationList")
                or []
            ]
        elif "authorizationList" in tx:
            raise SignerError("an authorization list needs a type-4 transaction")
        signed = account.sign_transaction(tx)
        return SignedTransaction(raw=bytes(signed.raw_transaction), tx_hash="0x" + bytes(signed.hash).hex(),
                                 sender=account.address.lower())

    def sign_authorization(self, *, key_ref: str, chain_id: int, address: str, nonce: int) -> SignedAuthorization:
        account = self._account(key_ref)
        signed = account.sign_authorization({"chainId": chain_id, "address": to_checksum_address(address),
                                             "nonce": nonce})
        return SignedAuthorization(chain_id=signed.chain_id, address="0x" + bytes(signed.address).hex(),
                                   nonce=signed.nonce, y_parity=signed.y_parity, r=signed.r, s=signed.s)

    @sensitive_variables()
    def _account(self, key_ref: str) -> LocalAccount:
        match = _PATH.match(key_ref or "")
        if not match or int(match["index"]) > MAX_INDEX:
            raise SignerError(f"the local signer has no key {key_ref!r}: it signs with m/44'/60'/0'/0/i and "
                              f"m/44'/60'/1'/0/i only")
        with self._lock:
            account = self._accounts.get(key_ref)
            if account is None:
                mnemonic = wallet_services.wallet_mnemonic_reveal()
                seed = Bip39SeedGenerator(mnemonic, Bip39Languages.ENGLISH).Generate()
                node = (Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(int(match["account"]))
                        .Change(Bip44Changes.CHAIN_EXT).AddressIndex(int(match["index"])))
                account = Account.from_key(node.PrivateKey().Raw().ToBytes())
                self._accounts[key_ref] = account
            return account


def _authorization_for_eth_account(auth: SignedAuthorization) -> dict:
    return {"chainId": auth.chain_id, "address": to_checksum_address(auth.address), "nonce": auth.nonce,
            "yParity": auth.y_parity, "r": auth.r, "s": auth.s}
