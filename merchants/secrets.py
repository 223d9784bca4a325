"""Application secrets at rest (webhook signing secrets, TOTP seeds, secrets inside stored idempotent responses).

Envelope encryption as for the master seed (gateway.crypto), under a key-encryption key of their own,
`GATEWAY_SECRETS_KEK`: the web tier and the webhook sender need these secrets, and must never load the seed's
`GATEWAY_KEK`. One random data key (a `SecretsKey` row: the key wrapped by the KEK and the KEK's fingerprint)
encrypts every secret with AES-256-GCM; it is unwrapped once per process and kept in memory. Rotating the KEK
(`manage.py rotate_secrets_kek`) re-wraps that row only.

A sealed secret is text: `v1:<data key id>:<base64url(nonce || ciphertext || tag)>`. Its associated data names the
data key and the slot it belongs to (`<table>.<column>:<row>`, see merchants.fields), so a ciphertext copied into
another row or column does not decrypt.
"""
import base64
import functools
import re
import secrets as random

from cryptography.exceptions import InvalidTag
from django.apps import apps
from django.db import connection, transaction
from django.views.decorators.debug import sensitive_variables

from gateway import crypto
from gateway.errors import ConfigurationError

SECRETS_KEKS = crypto.Keks(
    setting="GATEWAY_SECRETS_KEK", previous_setting="GATEWAY_SECRETS_KEK_PREVIOUS", what="secrets data key"
)
DEK_AD = b"gateway:secrets-dek:v1"
_SEALED = re.compile(r"v1:([0-9a-f]{8}):([A-Za-z0-9_-]+)")
_CREATE_LOCK = 0x5EC12E75  # advisory lock: one process creates the first data key


def is_sealed(value: str) -> bool:
    return bool(_SEALED.fullmatch(value))


def _secrets_key_model():
    return apps.get_model("merchants", "SecretsKey")


# Unwrapped data keys by id. A data key never changes (a KEK rotation re-wraps it), so nothing here goes stale.
_deks: dict[str, bytes] = {}


@sensitive_variables("dek")
def _data_key(key_id: str) -> bytes:
    dek = _deks.get(key_id)
    if dek is None:
        row = _secrets_key_model().objects.filter(id=key_id).first()
        if row is None:
            raise ConfigurationError(
                code="secrets_key_missing",
                message=f"The data key {key_id} that encrypted a stored secret is not in the database.",
            )
        dek = _deks[key_id] = crypto.dek_unwrap(
            wrapped_dek=bytes(row.wrapped_dek), wrapped_by=row.kek_fingerprint, keks=SECRETS_KEKS,
            associated_data=DEK_AD,
        )
    return dek


@sensitive_variables("dek", "wrapped")
def _current_data_key() -> tuple[str, bytes]:
    """The data key new secrets are sealed with (the newest row), created on first use."""
    SecretsKey = _secrets_key_model()
    row = SecretsKey.objects.order_by("-created").first()
    if row is None:
        SECRETS_KEKS.current()  # refuse before writing anything if GATEWAY_SECRETS_KEK is not usable
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CREATE_LOCK])
            row = SecretsKey.objects.order_by("-created").first()
            if row is None:
                dek = crypto.dek_generate()
                wrapped, fingerprint = crypto.dek_wrap(dek, keks=SECRETS_KEKS, associated_data=DEK_AD)
                row = SecretsKey.objects.create(id=random.token_hex(4), wrapped_dek=wrapped,
                                                kek_fingerprint=fingerprint)
                _deks[row.id] = dek
    return row.id, _data_key(row.id)


def _associated_data(key_id: str, slot: bytes) -> bytes:
    return b"gateway:secret:v1:" + key_id.encode() + b":" + slot


@sensitive_variables("plaintext", "dek")
def secret_seal(plaintext: str, *, slot: bytes) -> str:
    """`plaintext` encrypted under the current data key, bound to `slot` (e.g. b"<table>.<column>:<row id>")."""
    key_id, dek = _current_data_key()
    blob = crypto.seal(dek, plaintext.encode(), associated_data=_associated_data(key_id, slot))
    return f"v1:{key_id}:{base64.urlsafe_b64encode(blob).rstrip(b'=').decode()}"


@functools.lru_cache(maxsize=4096)
@sensitive_variables("dek")
def secret_open(sealed: str, *, slot: bytes) -> str:
    """The plaintext of `secret_seal(..., slot=slot)`; a ConfigurationError (503) naming the slot, never the value,
    if it is not a sealed secret of this slot or was tampered with. Results are remembered in this process (a sealed
    value's nonce makes it unique), so the webhook sender decrypts an endpoint's secret once, not per delivery."""
    match = _SEALED.fullmatch(sealed)
    label = slot.decode(errors="replace")
    if match is None:
        raise ConfigurationError(code="secret_not_sealed", message=f"The stored secret of {label} is not encrypted.")
    key_id, text = match.groups()
    dek = _data_key(key_id)
    try:
        blob = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return crypto.unseal(dek, blob, associated_data=_associated_data(key_id, slot)).decode()
    except (InvalidTag, ValueError):
        raise ConfigurationError(
            code="secret_decrypt_failed",
            message=f"The stored secret of {label} does not decrypt: it belongs to another row or was tampered with.",
        ) from None


def secrets_cache_clear() -> None:
    """Forget the data keys and opened secrets held by this process (tests; after restoring a database)."""
    _deks.clear()
    secret_open.cache_clear()
