"""gateway.crypto: the envelope primitives, for any family of KEKs (the seed's are tested through wallets.crypto)."""
import base64

import pytest
from django.test import override_settings

from gateway import crypto
from gateway.errors import ConfigurationError

KEKS = crypto.Keks(setting="TEST_FAMILY_KEK", previous_setting="TEST_FAMILY_KEK_PREVIOUS", what="test secrets")
OLD, NEW = b"o" * 32, b"n" * 32
AD = b"gateway:test-dek:v1"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_a_family_reads_its_own_settings_and_wraps_unwraps_and_rewraps():
    dek = crypto.dek_generate()
    with override_settings(TEST_FAMILY_KEK=b64(OLD)):
        wrapped, fingerprint = crypto.dek_wrap(dek, keks=KEKS, associated_data=AD)
        assert fingerprint == crypto.kek_fingerprint(OLD) and dek not in wrapped
        assert crypto.dek_unwrap(wrapped_dek=wrapped, wrapped_by=fingerprint, keks=KEKS, associated_data=AD) == dek
    with override_settings(TEST_FAMILY_KEK=b64(NEW), TEST_FAMILY_KEK_PREVIOUS=[b64(OLD)]):
        rewrapped, new_fingerprint = crypto.dek_rewrap(
            wrapped_dek=wrapped, wrapped_by=fingerprint, keks=KEKS, associated_data=AD
        )
    assert new_fingerprint == crypto.kek_fingerprint(NEW)
    with override_settings(TEST_FAMILY_KEK=b64(NEW), TEST_FAMILY_KEK_PREVIOUS=[]):
        assert crypto.dek_unwrap(wrapped_dek=rewrapped, wrapped_by=new_fingerprint, keks=KEKS,
                                 associated_data=AD) == dek
        with pytest.raises(ConfigurationError) as exc:  # the old wrapping needs the old KEK
            crypto.dek_unwrap(wrapped_dek=wrapped, wrapped_by=fingerprint, keks=KEKS, associated_data=AD)
    assert exc.value.code == "kek_unknown"
    assert "test secrets" in exc.value.message and "TEST_FAMILY_KEK_PREVIOUS" in exc.value.message
    assert b64(OLD) not in str(exc.value) and b64(NEW) not in str(exc.value)


def test_a_data_key_of_one_purpose_does_not_unwrap_as_another():
    with override_settings(TEST_FAMILY_KEK=b64(OLD)):
        wrapped, fingerprint = crypto.dek_wrap(crypto.dek_generate(), keks=KEKS, associated_data=AD)
        with pytest.raises(ConfigurationError) as exc:
            crypto.dek_unwrap(wrapped_dek=wrapped, wrapped_by=fingerprint, keks=KEKS, associated_data=b"other")
    assert exc.value.code == "dek_unwrap_failed"


def test_a_missing_family_kek_is_named():
    with override_settings(TEST_FAMILY_KEK=""):
        with pytest.raises(ConfigurationError) as exc:
            KEKS.current()
    assert exc.value.code == "kek_missing" and "TEST_FAMILY_KEK is not set" in exc.value.message
