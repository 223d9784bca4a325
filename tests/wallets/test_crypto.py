import base64
import os

import pytest
from cryptography.exceptions import InvalidTag
from django.test import override_settings

from gateway.errors import ConfigurationError
from wallets import crypto

KEK_A = b"k" * 32  # the test settings' GATEWAY_KEK
KEK_B = bytes(range(32))
KEK_C = b"\xc3" * 32


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def secret_forms(key: bytes) -> list[str]:
    return [key.hex(), b64(key), base64.urlsafe_b64encode(key).decode(), repr(key)]


# --- fingerprints ---------------------------------------------------------------------------------------------


def test_fingerprint_is_16_hex_stable_distinct_and_not_the_key():
    fp = crypto.kek_fingerprint(KEK_A)
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert fp == crypto.kek_fingerprint(KEK_A)
    assert fp != crypto.kek_fingerprint(KEK_B)
    # Domain separated: not a prefix of a plain hash of the key, and of course not the key.
    import hashlib

    assert fp != hashlib.sha256(KEK_A).hexdigest()[:16]
    assert all(fp not in form and form[:16] != fp for form in secret_forms(KEK_A))


# --- AES-GCM primitives ---------------------------------------------------------------------------------------


def test_seal_round_trips_with_a_fresh_nonce_each_time():
    one = crypto.seal(KEK_B, b"payload", associated_data=b"ad")
    two = crypto.seal(KEK_B, b"payload", associated_data=b"ad")
    assert one != two and one[:12] != two[:12]
    assert len(one) == 12 + len(b"payload") + 16
    assert crypto.unseal(KEK_B, one, associated_data=b"ad") == b"payload"
    assert crypto.unseal(KEK_B, memoryview(two), associated_data=b"ad") == b"payload"


@pytest.mark.parametrize("change", ["key", "ad", "nonce", "body", "tag", "short"])
def test_unseal_refuses_anything_altered(change):
    blob = crypto.seal(KEK_B, b"payload", associated_data=b"ad")
    key, ad = KEK_B, b"ad"
    if change == "key":
        key = KEK_C
    elif change == "ad":
        ad = b"other purpose"
    elif change == "nonce":
        blob = bytes([blob[0] ^ 1]) + blob[1:]
    elif change == "body":
        blob = blob[:12] + bytes([blob[12] ^ 1]) + blob[13:]
    elif change == "tag":
        blob = blob[:-1] + bytes([blob[-1] ^ 1])
    elif change == "short":
        blob = blob[:20]
    with pytest.raises(InvalidTag):
        crypto.unseal(key, blob, associated_data=ad)


# --- envelopes ------------------------------------------------------------------------------------------------


def test_envelope_round_trip_with_the_current_kek():
    env = crypto.envelope_encrypt(b"secret words")
    assert env.kek_fingerprint == crypto.kek_fingerprint(KEK_A)
    assert b"secret words" not in env.ciphertext and b"secret words" not in env.wrapped_dek
    assert len(env.wrapped_dek) == 12 + 32 + 16
    assert crypto.envelope_decrypt(env) == b"secret words"
    assert "secret" not in repr(env) and env.kek_fingerprint in repr(env)


def test_each_envelope_has_its_own_data_key():
    one, two = crypto.envelope_encrypt(b"x"), crypto.envelope_encrypt(b"x")
    dek_one = crypto.dek_unwrap(wrapped_dek=one.wrapped_dek, wrapped_by=one.kek_fingerprint)
    dek_two = crypto.dek_unwrap(wrapped_dek=two.wrapped_dek, wrapped_by=two.kek_fingerprint)
    assert len(dek_one) == 32 and dek_one != dek_two


def test_ciphertext_and_wrapped_key_cannot_be_swapped():
    """The associated data binds each blob to its purpose."""
    env = crypto.envelope_encrypt(b"secret words")
    with pytest.raises(ConfigurationError) as exc:
        crypto.envelope_decrypt(crypto.Envelope(
            ciphertext=env.ciphertext, wrapped_dek=env.ciphertext, kek_fingerprint=env.kek_fingerprint
        ))
    assert exc.value.code == "dek_unwrap_failed"
    with pytest.raises(ConfigurationError):
        crypto.envelope_decrypt(env, associated_data=b"gateway:something-else:v1")


def test_a_previous_kek_still_unwraps_and_rewrap_moves_to_the_current_one():
    env = crypto.envelope_encrypt(b"secret words")  # wrapped by KEK_A
    with override_settings(GATEWAY_KEK=b64(KEK_B), GATEWAY_KEK_PREVIOUS=[b64(KEK_A)]):
        assert crypto.envelope_decrypt(env) == b"secret words"
        wrapped, fp = crypto.dek_rewrap(wrapped_dek=env.wrapped_dek, wrapped_by=env.kek_fingerprint)
        assert fp == crypto.kek_fingerprint(KEK_B)
        rewrapped = crypto.Envelope(ciphertext=env.ciphertext, wrapped_dek=wrapped, kek_fingerprint=fp)
        assert crypto.envelope_decrypt(rewrapped) == b"secret words"
    with override_settings(GATEWAY_KEK=b64(KEK_B), GATEWAY_KEK_PREVIOUS=[]):
        assert crypto.envelope_decrypt(rewrapped) == b"secret words"


def test_unknown_kek_is_a_clear_error_naming_fingerprints_only():
    env = crypto.envelope_encrypt(b"secret words")
    with override_settings(GATEWAY_KEK=b64(KEK_B), GATEWAY_KEK_PREVIOUS=[b64(KEK_C)]):
        with pytest.raises(ConfigurationError) as exc:
            crypto.envelope_decrypt(env)
    error = exc.value
    assert error.code == "kek_unknown" and error.status_code == 503
    assert env.kek_fingerprint in error.message
    assert crypto.kek_fingerprint(KEK_B) in error.message and crypto.kek_fingerprint(KEK_C) in error.message
    assert "GATEWAY_KEK_PREVIOUS" in error.message
    for key in (KEK_A, KEK_B, KEK_C):
        assert not any(form in str(error) for form in secret_forms(key))
    assert error.__cause__ is None and error.__suppress_context__


def test_a_tampered_ciphertext_is_a_clear_error():
    env = crypto.envelope_encrypt(b"secret words")
    tampered = crypto.Envelope(
        ciphertext=env.ciphertext[:-1] + bytes([env.ciphertext[-1] ^ 1]),
        wrapped_dek=env.wrapped_dek, kek_fingerprint=env.kek_fingerprint,
    )
    with pytest.raises(ConfigurationError) as exc:
        crypto.envelope_decrypt(tampered)
    assert exc.value.code == "seed_decrypt_failed"


# --- loading KEKs from settings -------------------------------------------------------------------------------


def test_known_keks_current_first_deduplicated_and_urlsafe_accepted():
    with override_settings(
        GATEWAY_KEK=b64(KEK_B), GATEWAY_KEK_PREVIOUS=[base64.urlsafe_b64encode(KEK_C).decode(), b64(KEK_B)]
    ):
        keks = crypto.known_keks()
    assert list(keks.values()) == [KEK_B, KEK_C]
    assert list(keks) == [crypto.kek_fingerprint(KEK_B), crypto.kek_fingerprint(KEK_C)]


def test_previous_keks_may_be_a_comma_separated_string():
    with override_settings(GATEWAY_KEK=b64(KEK_A), GATEWAY_KEK_PREVIOUS=f"{b64(KEK_B)}, {b64(KEK_C)}"):
        assert crypto.previous_keks() == [KEK_B, KEK_C]


@pytest.mark.parametrize(
    "value, code, hint",
    [
        ("", "kek_missing", "GATEWAY_KEK is not set"),
        (None, "kek_missing", "GATEWAY_KEK is not set"),
        ("not base64 at all!!", "kek_invalid", "not valid base64"),
        (base64.b64encode(b"s" * 16).decode(), "kek_invalid", "16 bytes"),
        (base64.b64encode(b"s" * 33).decode(), "kek_invalid", "33 bytes"),
    ],
)
def test_a_bad_current_kek_is_refused_without_echoing_it(value, code, hint):
    with override_settings(GATEWAY_KEK=value):
        with pytest.raises(ConfigurationError) as exc:
            crypto.current_kek()
    assert exc.value.code == code and hint in exc.value.message
    if value:
        assert value not in str(exc.value)
    assert exc.value.__cause__ is None


def test_a_bad_previous_kek_is_named_by_position_without_echoing_it():
    bad = base64.b64encode(os.urandom(20)).decode()
    with override_settings(GATEWAY_KEK=b64(KEK_A), GATEWAY_KEK_PREVIOUS=[b64(KEK_B), bad]):
        with pytest.raises(ConfigurationError) as exc:
            crypto.known_keks()
    assert "GATEWAY_KEK_PREVIOUS[1]" in exc.value.message and "20 bytes" in exc.value.message
    assert bad not in exc.value.message


def test_encrypting_needs_a_usable_current_kek():
    with override_settings(GATEWAY_KEK=""):
        with pytest.raises(ConfigurationError):
            crypto.envelope_encrypt(b"x")
