"""Envelope encryption of the master seed with AES-256-GCM.

A random 32-byte data key (DEK) encrypts the secret; the DEK is itself encrypted ("wrapped") by the key-encryption
key (KEK) from the environment. Rotating the KEK only rewraps the 60-byte DEK, never the secret. Every blob is
`nonce (12 bytes) || ciphertext || tag (16 bytes)`, with associated data naming its purpose so a blob cannot be
swapped into another slot.

KEKs are named by a fingerprint (a domain-separated SHA-256, 16 hex chars) that is safe to store, log and print;
no error message here ever contains key material.
"""
import base64
import binascii
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from gateway.errors import ConfigurationError

KEY_SIZE = 32
NONCE_SIZE = 12
MNEMONIC_AD = b"gateway:mnemonic:v1"
DEK_AD = b"gateway:dek:v1"
_FINGERPRINT_DOMAIN = b"gateway:kek-fingerprint:v1:"
_KEK_HELP = "Generate one with: python -c \"import base64, os; print(base64.b64encode(os.urandom(32)).decode())\""


@dataclass(frozen=True, repr=False)
class Envelope:
    """What is stored: the encrypted secret, the wrapped DEK and the fingerprint of the KEK that wrapped it."""

    ciphertext: bytes
    wrapped_dek: bytes
    kek_fingerprint: str

    def __repr__(self):
        return f"Envelope(kek_fingerprint={self.kek_fingerprint!r})"


def kek_fingerprint(kek: bytes) -> str:
    """A public name for a KEK: the first 16 hex chars of SHA-256 over a domain-separated string."""
    return hashlib.sha256(_FINGERPRINT_DOMAIN + bytes(kek)).hexdigest()[:16]


# --- keys from settings ---------------------------------------------------------------------------------------


@sensitive_variables("value", "raw")
def _decode_kek(value, *, name: str) -> bytes:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(code="kek_missing", message=f"{name} is not set. {_KEK_HELP}")
    try:
        raw = base64.b64decode(value.strip().replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            code="kek_invalid", message=f"{name} is not valid base64 (the value is not shown). {_KEK_HELP}"
        ) from None
    if len(raw) != KEY_SIZE:
        raise ConfigurationError(
            code="kek_invalid",
            message=f"{name} decodes to {len(raw)} bytes; a KEK must be exactly {KEY_SIZE} bytes. {_KEK_HELP}",
        )
    return raw


def current_kek() -> bytes:
    """The KEK new envelopes are wrapped with: settings.GATEWAY_KEK (base64 of 32 bytes)."""
    return _decode_kek(getattr(settings, "GATEWAY_KEK", ""), name="GATEWAY_KEK")


def previous_keks() -> list[bytes]:
    """Older KEKs still accepted for unwrapping while a rotation is under way: settings.GATEWAY_KEK_PREVIOUS."""
    values = getattr(settings, "GATEWAY_KEK_PREVIOUS", None) or []
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    return [_decode_kek(v, name=f"GATEWAY_KEK_PREVIOUS[{i}]") for i, v in enumerate(values)]


def known_keks() -> dict[str, bytes]:
    """Every KEK this process can unwrap with, by fingerprint: the current one first, then the previous ones."""
    keks: dict[str, bytes] = {}
    for kek in [current_kek(), *previous_keks()]:
        keks.setdefault(kek_fingerprint(kek), kek)
    return keks


def _kek_for(fingerprint: str) -> bytes:
    keks = known_keks()
    try:
        return keks[fingerprint]
    except KeyError:
        raise ConfigurationError(
            code="kek_unknown",
            message=(
                f"The master seed is wrapped by the KEK with fingerprint {fingerprint}, which is neither GATEWAY_KEK "
                f"nor in GATEWAY_KEK_PREVIOUS (known fingerprints: {', '.join(keks)}). Put the KEK that wrapped it "
                f"in GATEWAY_KEK_PREVIOUS, or set it as GATEWAY_KEK."
            ),
        ) from None


# --- AES-256-GCM ----------------------------------------------------------------------------------------------


@sensitive_variables("key", "plaintext")
def seal(key: bytes, plaintext: bytes, *, associated_data: bytes) -> bytes:
    """nonce || AES-256-GCM(key, nonce, plaintext, associated_data), with a fresh random 96-bit nonce."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


@sensitive_variables("key")
def unseal(key: bytes, blob: bytes, *, associated_data: bytes) -> bytes:
    """The plaintext of `seal`; raises cryptography's InvalidTag if the key, the data or its purpose is wrong."""
    blob = bytes(blob)
    if len(blob) < NONCE_SIZE + 16:
        raise InvalidTag()
    return AESGCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], associated_data)


# --- envelopes ------------------------------------------------------------------------------------------------


@sensitive_variables("plaintext", "kek", "dek")
def envelope_encrypt(plaintext: bytes, *, associated_data: bytes = MNEMONIC_AD) -> Envelope:
    """Encrypt `plaintext` under a fresh DEK, and wrap the DEK with the current KEK."""
    kek = current_kek()
    dek = AESGCM.generate_key(bit_length=256)
    return Envelope(
        ciphertext=seal(dek, plaintext, associated_data=associated_data),
        wrapped_dek=seal(kek, dek, associated_data=DEK_AD),
        kek_fingerprint=kek_fingerprint(kek),
    )


@sensitive_variables("kek", "dek")
def dek_unwrap(*, wrapped_dek: bytes, wrapped_by: str) -> bytes:
    """The DEK, unwrapped by whichever known KEK has the fingerprint `wrapped_by` (the stored kek_fingerprint)."""
    kek = _kek_for(wrapped_by)
    try:
        return unseal(kek, wrapped_dek, associated_data=DEK_AD)
    except InvalidTag:
        raise ConfigurationError(
            code="dek_unwrap_failed",
            message=(
                f"The data key does not unwrap with the KEK {wrapped_by}: the stored wrapped key is corrupted "
                f"or was tampered with."
            ),
        ) from None


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


@sensitive_variables("dek", "kek")
def dek_rewrap(*, wrapped_dek: bytes, wrapped_by: str) -> tuple[bytes, str]:
    """Unwrap the DEK with the known KEK that wrapped it and wrap it again with the current KEK.

    Returns (new wrapped DEK, fingerprint of the current KEK)."""
    dek = dek_unwrap(wrapped_dek=wrapped_dek, wrapped_by=wrapped_by)
    kek = current_kek()
    return seal(kek, dek, associated_data=DEK_AD), kek_fingerprint(kek)
