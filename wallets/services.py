"""Writes of the wallet: the master seed (create, import, rotate its KEK, decrypt for signing) and deposit addresses.

The mnemonic exists in clear only in memory, inside these functions; it is stored as an AES-256-GCM envelope
(see wallets/crypto.py) and never logged. Functions holding it are marked with `sensitive_variables` so Django's
error reports do not show it.
"""
import logging

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from gateway.db import insert_sql, mark_saved, next_pk_sql
from gateway.errors import ConfigurationError, DomainError
from merchants.models import Merchant

from . import crypto, hd
from .models import DepositAddress, MasterSeed
from .selectors import DEPOSIT_INDEX_SEQUENCE, account_xpub_cache_clear

logger = logging.getLogger(__name__)


def _wallet_not_initialized() -> ConfigurationError:
    return ConfigurationError(
        code="wallet_not_initialized",
        message="The gateway has no wallet yet: run `manage.py wallet init` (or `manage.py wallet import`).",
    )


def _wallet_exists() -> DomainError:
    return DomainError(
        code="wallet_exists",
        message=(
            "A master seed already exists; it is never replaced. Use `manage.py wallet rotate-kek` to change the KEK."
        ),
        status_code=409,
    )


def _envelope_of(seed: MasterSeed) -> crypto.Envelope:
    return crypto.Envelope(
        ciphertext=bytes(seed.encrypted_mnemonic),
        wrapped_dek=bytes(seed.wrapped_data_key),
        kek_fingerprint=seed.kek_fingerprint,
    )


@sensitive_variables()
def _master_seed_store(*, mnemonic: str) -> MasterSeed:
    """Encrypt and store a valid, normalized mnemonic as the one master seed."""
    xpub = hd.account_xpub(mnemonic)
    envelope = crypto.envelope_encrypt(mnemonic.encode(), associated_data=crypto.MNEMONIC_AD)
    # Read it back before storing it: a seed we cannot decrypt is worse than no seed.
    if crypto.envelope_decrypt(envelope, associated_data=crypto.MNEMONIC_AD) != mnemonic.encode():
        raise RuntimeError("The encrypted master seed does not decrypt to what was encrypted.")
    try:
        with transaction.atomic():
            seed = MasterSeed.objects.create(
                encrypted_mnemonic=envelope.ciphertext,
                wrapped_data_key=envelope.wrapped_dek,
                kek_fingerprint=envelope.kek_fingerprint,
                account_xpub=xpub,
            )
    except IntegrityError:  # a concurrent init won the singleton
        raise _wallet_exists() from None
    account_xpub_cache_clear()
    transaction.on_commit(account_xpub_cache_clear)
    logger.info(
        "Master seed stored (KEK %s, xpub fingerprint %s)", seed.kek_fingerprint, hd.xpub_fingerprint(xpub)
    )
    return seed


@sensitive_variables()
def wallet_init(*, strength_words: int = 24) -> MasterSeed:
    """Generate a new BIP39 mnemonic and store it encrypted. Refuses if a seed exists."""
    if strength_words not in hd.WORD_COUNTS:
        raise DomainError(
            code="parameter_invalid",
            message=f"A BIP39 mnemonic has 12, 15, 18, 21 or 24 words, not {strength_words}.",
            param="strength_words",
        )
    crypto.current_kek()  # refuse before generating anything if GATEWAY_KEK is not usable
    if MasterSeed.objects.exists():
        raise _wallet_exists()
    return _master_seed_store(mnemonic=hd.mnemonic_generate(words=strength_words))


@sensitive_variables()
def wallet_import(*, mnemonic: str) -> MasterSeed:
    """Store an existing BIP39 English mnemonic (e.g. restoring a backup). Refuses if a seed exists.

    The mnemonic is normalized (NFKD, lower case, single spaces); an invalid one is refused with a message that
    does not repeat it."""
    crypto.current_kek()
    if MasterSeed.objects.exists():
        raise _wallet_exists()
    try:
        normalized = hd.mnemonic_validate(mnemonic)
    except hd.MnemonicError as exc:
        raise DomainError(code="mnemonic_invalid", message=str(exc), param="mnemonic") from None
    return _master_seed_store(mnemonic=normalized)


@transaction.atomic
def wallet_rotate_kek() -> MasterSeed:
    """Rewrap the seed's data key with the current GATEWAY_KEK; the encrypted mnemonic is not touched.

    Unwraps with whichever known KEK (GATEWAY_KEK or GATEWAY_KEK_PREVIOUS) wrapped it. Processes still running with
    the old KEK as current keep working as long as they also know the new one, and the new processes know the old
    one through GATEWAY_KEK_PREVIOUS, so a rotation needs no downtime. A no-op if the current KEK wrapped it."""
    seed = MasterSeed.objects.select_for_update().filter(singleton=True).first()
    if seed is None:
        raise _wallet_not_initialized()
    current = crypto.kek_fingerprint(crypto.current_kek())
    if seed.kek_fingerprint == current:
        return seed
    previous = seed.kek_fingerprint
    wrapped, fingerprint = crypto.dek_rewrap(wrapped_dek=bytes(seed.wrapped_data_key), wrapped_by=previous)
    # Prove that the new wrapping opens the seed before it replaces the old one.
    crypto.envelope_decrypt(
        crypto.Envelope(ciphertext=bytes(seed.encrypted_mnemonic), wrapped_dek=wrapped, kek_fingerprint=fingerprint),
        associated_data=crypto.MNEMONIC_AD,
    )
    seed.wrapped_data_key = wrapped
    seed.kek_fingerprint = fingerprint
    seed.rotated = timezone.now()
    seed.save(update_fields=["wrapped_data_key", "kek_fingerprint", "rotated"])
    logger.info("Master seed KEK rotated from %s to %s", previous, fingerprint)
    return seed


@sensitive_variables()
def wallet_mnemonic_reveal() -> str:
    """The mnemonic in clear, for signing sweeps. Checks that it still derives the stored account xpub.

    Never log, print or return it to a client; hold it no longer than needed."""
    seed = MasterSeed.objects.filter(singleton=True).first()
    if seed is None:
        raise _wallet_not_initialized()
    mnemonic = crypto.envelope_decrypt(_envelope_of(seed), associated_data=crypto.MNEMONIC_AD).decode()
    if hd.account_xpub(mnemonic) != seed.account_xpub:
        raise ConfigurationError(
            code="wallet_integrity",
            message=(
                "The decrypted master seed does not derive the stored account xpub: the wallet row is inconsistent."
            ),
        )
    logger.info("Master seed decrypted (KEK %s)", seed.kek_fingerprint)
    return mnemonic


def deposit_address_reserve(*, merchant: Merchant) -> DepositAddress:
    """A fresh deposit address, m/44'/60'/0'/0/<index>, derived from the account xpub alone, NOT yet written: its
    index and primary key are drawn, and the caller inserts the row in its own transaction, in the same statement as
    its own rows if it likes (`gateway.db.insert_sql(DepositAddress, [address], with_pk=True)`).

    The index comes from a PostgreSQL sequence: concurrent callers never wait on each other or get the same index,
    and an index whose transaction rolls back is burnt, never handed out again.
    """
    # One round-trip for the next index, the row's key and the account xpub. The xpub is read fresh rather than
    # cached: it costs nothing extra here, and no process can ever derive from a stale key (wallets.hd caches the
    # parsed key).
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT nextval('{DEPOSIT_INDEX_SEQUENCE}'), {next_pk_sql(DepositAddress)}, "
            f"(SELECT {qn('account_xpub')} FROM {qn(MasterSeed._meta.db_table)} WHERE {qn('singleton')})"
        )
        index, pk, xpub = cursor.fetchone()
    if xpub is None:
        raise _wallet_not_initialized()
    if index > hd.MAX_INDEX:
        raise ConfigurationError(
            code="deposit_addresses_exhausted", message=f"All {hd.MAX_INDEX + 1} deposit address indexes are used."
        )
    return DepositAddress(pk=pk, index=index, address=hd.address_at(xpub, index), merchant=merchant)


def deposit_address_allocate(*, merchant: Merchant) -> DepositAddress:
    """A fresh deposit address (`deposit_address_reserve`), written in the caller's transaction."""
    address = deposit_address_reserve(merchant=merchant)
    sql, params = insert_sql(DepositAddress, [address], with_pk=True)  # the row save() would write, with less work
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    mark_saved(address)
    return address
