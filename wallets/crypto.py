"""Envelope encryption of the master seed with AES-256-GCM (the primitives: gateway.crypto).

A random 32-byte data key (DEK) encrypts the secret; the DEK is itself encrypted ("wrapped") by the key-encryption
key (KEK) from `GATEWAY_KEK`, which only the signer process loads. Rotating the KEK only rewraps the 60-byte DEK,
never the secret. Every blob is `nonce (12 bytes) || ciphertext || tag (16 bytes)`, with associated data naming its
purpose so a blob cannot be swapped into another slot.

KEKs are named by a fingerprint (a domain-separated SHA-256, 16 hex chars) that is safe to store, log and print;
no error message here ever contains key material.
"""
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from django.views.decorators.debug import sensitive_variables

from gateway import crypto as primitives
from gateway.crypto import KEY_SIZE, NONCE_SIZE, kek_fingerprint, seal, unseal  # noqa: F401  (this module's API)
from gateway.errors import ConfigurationError

MNEMONIC_AD = b"gateway:mnemonic:v1"
DEK_AD = b"gateway:dek:v1"
SEED_KEKS = primitives.Keks(setting="GATEWAY_KEK", previous_setting="GATEWAY_KEK_PREVIOUS", what="master seed")


@dataclass(frozen=True, repr=False)
class Envelope:
    """What is stored: the encrypted secret, the wrapped DEK and the fingerprint of the KEK that wrapped it."""

    ciphertext: bytes
    wrapped_dek: bytes
    kek_fingerprint: str

    def __repr__(self):
        return f"Envelope(kek_fingerprint={self.kek_fingerprint!r})"


# --- keys from settings ---------------------------------------------------------------------------------------


def current_kek() -> bytes:
    """The KEK new envelopes are wrapped with: settings.GATEWAY_KEK (base64 of 32 bytes)."""
    return SEED_KEKS.current()


def previous_keks() -> list[bytes]:
    """Older KEKs still accepted for unwrapping while a rotation is under way: settings.GATEWAY_KEK_PREVIOUS."""
    return SEED_KEKS.previous()


def known_keks() -> dict[str, bytes]:
    """Every KEK this process can unwrap with, by fingerprint: the current one first, then the previous ones."""
    return SEED_KEKS.known()


# --- envelopes ------------------------------------------------------------------------------------------------


@sensitive_variables("plaintext", "dek")
def envelope_encrypt(plaintext: bytes, *, associated_data: bytes = MNEMONIC_AD) -> Envelope:
    """Encrypt `plaintext` under a fresh DEK, and wrap the DEK with the current KEK."""
    dek = primitives.dek_generate()
    wrapped, fingerprint = primitives.dek_wrap(dek, keks=SEED_KEKS, associated_data=DEK_AD)
    return Envelope(
        ciphertext=seal(dek, plaintext, associated_data=associated_data), wrapped_dek=wrapped,
        kek_fingerprint=fingerprint,
    )


def dek_unwrap(*, wrapped_dek: bytes, wrapped_by: str) -> bytes:
    """The DEK, unwrapped by whichever known KEK has the fingerprint `wrapped_by` (the stored kek_fingerprint)."""
    return primitives.dek_unwrap(wrapped_dek=wrapped_dek, wrapped_by=wrapped_by, keks=SEED_KEKS, associated_data=DEK_AD)


@sensitive_variables("dek")
def envelope_decrypt(envelope: Envelope, *, associated_data: bytes = MNEMONIC_AD) -> bytes:
    dek = dek_unwrap(wrapped_dek=envelope.wrapped_dek, wrapped_by=envelope.kek_fingerprint)
    try:
        return unseal(dek, envelope.ciphertext, associated_data=associated_data)
    except InvalidTag:
        raise ConfigurationError(
            code="seed_decrypt_failed",
            message=(
                "The encrypted master seed does not decrypt with its data key: it is corrupted or was tampered with."
            ),
        ) from None


def dek_rewrap(*, wrapped_dek: bytes, wrapped_by: str) -> tuple[bytes, str]:
    """Unwrap the DEK with the known KEK that wrapped it and wrap it again with the current KEK.

    Returns (new wrapped DEK, fingerprint of the current KEK)."""
    return primitives.dek_rewrap(wrapped_dek=wrapped_dek, wrapped_by=wrapped_by, keks=SEED_KEKS, associated_data=DEK_AD)
