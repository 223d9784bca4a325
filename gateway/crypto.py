"""Envelope encryption primitives (AES-256-GCM), shared by every secret the gateway keeps at rest.

A random 32-byte data key (DEK) encrypts the secret; the DEK is itself encrypted ("wrapped") by a key-encryption key
(KEK) from the environment. Rotating a KEK only rewraps the 60-byte DEK, never the secrets. Every blob is
`nonce (12 bytes) || ciphertext || tag (16 bytes)`, with associated data naming its purpose so a blob cannot be
swapped into another slot.

Each family of secrets has its own KEK, read from its own settings (`Keks`): the master seed's `GATEWAY_KEK`
(wallets.crypto), which only the signer loads, and the application secrets' `GATEWAY_SECRETS_KEK`
(merchants.secrets), which the web tier loads. KEKs are named by a fingerprint (a domain-separated SHA-256, 16 hex
chars) that is safe to store, log and print; no error message here ever contains key material.
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
_FINGERPRINT_DOMAIN = b"gateway:kek-fingerprint:v1:"
KEK_HELP = "Generate one with: python -c \"import base64, os; print(base64.b64encode(os.urandom(32)).decode())\""


def kek_fingerprint(kek: bytes) -> str:
    """A public name for a KEK: the first 16 hex chars of SHA-256 over a domain-separated string."""
    return hashlib.sha256(_FINGERPRINT_DOMAIN + bytes(kek)).hexdigest()[:16]


@sensitive_variables("value", "raw")
def kek_decode(value, *, name: str) -> bytes:
    """The 32 bytes of a base64 (standard or URL-safe) KEK setting; a clear error naming `name`, never the value."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(code="kek_missing", message=f"{name} is not set. {KEK_HELP}")
    try:
        raw = base64.b64decode(value.strip().replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            code="kek_invalid", message=f"{name} is not valid base64 (the value is not shown). {KEK_HELP}"
        ) from None
    if len(raw) != KEY_SIZE:
        raise ConfigurationError(
            code="kek_invalid",
            message=f"{name} decodes to {len(raw)} bytes; a KEK must be exactly {KEY_SIZE} bytes. {KEK_HELP}",
        )
    return raw


@dataclass(frozen=True)
class Keks:
    """The KEKs of one family of secrets, read from settings on each call (so override_settings and a restart with
    new values both apply): `setting` holds the current one (base64 of 32 bytes), `previous_setting` a list (or a
    comma-separated string) of older ones still accepted for unwrapping while a rotation is under way. `what` names
    the secrets in error messages."""

    setting: str
    previous_setting: str
    what: str

    def current(self) -> bytes:
        """The KEK new data keys are wrapped with."""
        return kek_decode(getattr(settings, self.setting, ""), name=self.setting)

    def previous(self) -> list[bytes]:
        values = getattr(settings, self.previous_setting, None) or []
        if isinstance(values, str):
            values = [v for v in values.split(",") if v.strip()]
        return [kek_decode(v, name=f"{self.previous_setting}[{i}]") for i, v in enumerate(values)]

    def known(self) -> dict[str, bytes]:
        """Every KEK this process can unwrap with, by fingerprint: the current one first, then the previous ones."""
        keks: dict[str, bytes] = {}
        for kek in [self.current(), *self.previous()]:
            keks.setdefault(kek_fingerprint(kek), kek)
        return keks

    def by_fingerprint(self, fingerprint: str) -> bytes:
        keks = self.known()
        try:
            return keks[fingerprint]
        except KeyError:
            raise ConfigurationError(
                code="kek_unknown",
                message=(
                    f"The {self.what} is wrapped by the KEK with fingerprint {fingerprint}, which is neither "
                    f"{self.setting} nor in {self.previous_setting} (known fingerprints: {', '.join(keks)}). Put "
                    f"the KEK that wrapped it in {self.previous_setting}, or set it as {self.setting}."
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


# --- data keys ------------------------------------------------------------------------------------------------


def dek_generate() -> bytes:
    return AESGCM.generate_key(bit_length=256)


@sensitive_variables("dek", "kek")
def dek_wrap(dek: bytes, *, keks: Keks, associated_data: bytes) -> tuple[bytes, str]:
    """(the DEK wrapped by the current KEK of `keks`, that KEK's fingerprint)."""
    kek = keks.current()
    return seal(kek, dek, associated_data=associated_data), kek_fingerprint(kek)


@sensitive_variables("kek")
def dek_unwrap(*, wrapped_dek: bytes, wrapped_by: str, keks: Keks, associated_data: bytes) -> bytes:
    """The DEK, unwrapped by whichever known KEK has the fingerprint `wrapped_by` (the stored kek_fingerprint)."""
    kek = keks.by_fingerprint(wrapped_by)
    try:
        return unseal(kek, wrapped_dek, associated_data=associated_data)
    except InvalidTag:
        raise ConfigurationError(
            code="dek_unwrap_failed",
            message=(
                f"The data key does not unwrap with the KEK {wrapped_by}: the stored wrapped key is corrupted "
                f"or was tampered with."
            ),
        ) from None


@sensitive_variables("dek")
def dek_rewrap(*, wrapped_dek: bytes, wrapped_by: str, keks: Keks, associated_data: bytes) -> tuple[bytes, str]:
    """Unwrap the DEK with the known KEK that wrapped it and wrap it again with the current KEK.

    Returns (new wrapped DEK, fingerprint of the current KEK)."""
    dek = dek_unwrap(wrapped_dek=wrapped_dek, wrapped_by=wrapped_by, keks=keks, associated_data=associated_data)
    return dek_wrap(dek, keks=keks, associated_data=associated_data)
