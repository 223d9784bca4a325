"""Reads of the wallet: the master seed's public parts and the deposit-address counters. Nothing here decrypts."""
import threading
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from . import crypto, hd
from .models import BlockedAddress, DepositAddress, MasterSeed

DEPOSIT_INDEX_SEQUENCE = "wallets_deposit_address_index_seq"

_xpub_lock = threading.Lock()
_xpub: str | None = None


def master_seed_get() -> MasterSeed | None:
    return MasterSeed.objects.filter(singleton=True).first()


def account_xpub_get() -> str | None:
    """The account xpub (m/44'/60'/0'/0), or None if no wallet exists yet.

    Cached per process once found: a seed is created once and never changes (rotating the KEK leaves it alone).
    `account_xpub_cache_clear()` forgets it (the wallet services call it when they create a seed)."""
    global _xpub
    if _xpub is None:
        xpub = MasterSeed.objects.filter(singleton=True).values_list("account_xpub", flat=True).first()
        with _xpub_lock:
            _xpub = xpub
    return _xpub


def account_xpub_cache_clear() -> None:
    global _xpub
    with _xpub_lock:
        _xpub = None


def deposit_address_next_index() -> int:
    """The index the next allocation will get (barring a concurrent one), read without consuming it."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT last_value, is_called FROM {connection.ops.quote_name(DEPOSIT_INDEX_SEQUENCE)}")
        last_value, is_called = cursor.fetchone()
    return last_value + 1 if is_called else last_value


@dataclass(frozen=True)
class WalletStatus:
    kek_fingerprint: str
    kek_is_current: bool  # wrapped by GATEWAY_KEK (else a rotation is pending)
    kek_is_known: bool  # wrapped by GATEWAY_KEK or one of GATEWAY_KEK_PREVIOUS: this process can decrypt
    xpub_fingerprint: str
    first_address: str
    created: datetime
    rotated: datetime | None
    addresses_issued: int
    next_index: int

    def as_json(self) -> dict:
        return {
            "initialized": True,
            "kek_fingerprint": self.kek_fingerprint,
            "kek_is_current": self.kek_is_current,
            "kek_is_known": self.kek_is_known,
            "xpub_fingerprint": self.xpub_fingerprint,
            "first_address": self.first_address,
            "created": self.created.isoformat(),
            "rotated": self.rotated.isoformat() if self.rotated else None,
            "addresses_issued": self.addresses_issued,
            "next_index": self.next_index,
        }


def wallet_status_get() -> WalletStatus | None:
    """What an operator needs to see about the wallet; only public values. None if no wallet exists."""
    seed = master_seed_get()
    if seed is None:
        return None
    known = list(crypto.known_keks())  # the current KEK's fingerprint first
    return WalletStatus(
        kek_fingerprint=seed.kek_fingerprint,
        kek_is_current=seed.kek_fingerprint == known[0],
        kek_is_known=seed.kek_fingerprint in known,
        xpub_fingerprint=hd.xpub_fingerprint(seed.account_xpub),
        first_address=hd.address_at(seed.account_xpub, 0),
        created=seed.created,
        rotated=seed.rotated,
        addresses_issued=DepositAddress.objects.count(),
        next_index=deposit_address_next_index(),
    )


# --- The address blocklist (wallets/blocklist.py writes it) ------------------------------------------------------


def address_is_blocked(address: str) -> bool:
    """Whether `address` (any case) is on the active blocklist: one lookup on the unique index."""
    return BlockedAddress.objects.filter(address=(address or "").strip().lower(), active=True).exists()


def blocked_among(addresses) -> set[str]:
    """The addresses (lower-case) of `addresses` on the active blocklist, in one query."""
    wanted = {(a or "").lower() for a in addresses if a}
    if not wanted:
        return set()
    return set(BlockedAddress.objects.filter(address__in=wanted, active=True).values_list("address", flat=True))
