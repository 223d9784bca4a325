import base64
import io
import json
import logging
import threading

import pytest
from bip_utils import Bip39MnemonicDecoder, Bip39SeedGenerator, Bip44, Bip44Changes, Bip44Coins
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import override_settings

from gateway.errors import ConfigurationError, DomainError
from tests.dbscan import database_dump, leaks
from tests.merchants.factories import MerchantFactory
from tests.wallets.factories import TEST_ADDRESS_0, TEST_MNEMONIC, MasterSeedFactory
from wallets import crypto, hd, selectors, services
from wallets.models import DepositAddress, MasterSeed

KEK_OLD = b"k" * 32  # GATEWAY_KEK of the test settings
KEK_NEW = bytes(range(100, 132))
KEK_OTHER = b"\x5a" * 32


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def rotated_settings():
    """The new KEK is current; the old one is kept for unwrapping until the rotation is done."""
    return override_settings(GATEWAY_KEK=b64(KEK_NEW), GATEWAY_KEK_PREVIOUS=[b64(KEK_OLD)])


def seed_snapshot() -> list[tuple]:
    return [
        (bytes(s.encrypted_mnemonic), bytes(s.wrapped_data_key), s.kek_fingerprint, s.account_xpub, s.rotated)
        for s in MasterSeed.objects.all()
    ]


def word_windows(mnemonic: str, size: int = 3) -> list[str]:
    words = mnemonic.split()
    return [" ".join(words[i:i + size]) for i in range(len(words) - size + 1)]


@pytest.fixture(autouse=True)
def _fresh_xpub_cache():
    selectors.account_xpub_cache_clear()
    yield
    selectors.account_xpub_cache_clear()


# --- wallet_init ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_wallet_init_stores_an_encrypted_24_word_seed():
    seed = services.wallet_init()

    assert MasterSeed.objects.count() == 1
    assert seed.kek_fingerprint == crypto.kek_fingerprint(KEK_OLD)
    assert seed.rotated is None
    mnemonic = services.wallet_mnemonic_reveal()
    assert len(mnemonic.split()) == 24 and hd.mnemonic_validate(mnemonic) == mnemonic
    assert seed.account_xpub == hd.account_xpub(mnemonic)
    stored = MasterSeed.objects.get()
    assert mnemonic.encode() not in bytes(stored.encrypted_mnemonic)
    assert str(seed) == f"Master seed (KEK {seed.kek_fingerprint})"
    # two words in a row (a single BIP39 word such as "seed" may appear in the text by chance)
    assert not any(w in repr(seed) + str(seed) for w in word_windows(mnemonic, 2))
    assert selectors.account_xpub_get() == seed.account_xpub


@pytest.mark.django_db
def test_wallet_init_with_12_words():
    services.wallet_init(strength_words=12)
    assert len(services.wallet_mnemonic_reveal().split()) == 12


@pytest.mark.django_db
def test_wallet_init_refuses_an_odd_size_and_stores_nothing():
    with pytest.raises(DomainError) as exc:
        services.wallet_init(strength_words=13)
    assert exc.value.code == "parameter_invalid" and exc.value.param == "strength_words"
    assert not MasterSeed.objects.exists()


@pytest.mark.django_db
def test_wallet_init_refuses_when_a_seed_exists_and_changes_nothing():
    services.wallet_init()
    before = seed_snapshot()

    with pytest.raises(DomainError) as exc:
        services.wallet_init()

    assert exc.value.code == "wallet_exists" and exc.value.status_code == 409
    assert seed_snapshot() == before


@pytest.mark.django_db
def test_a_racing_init_loses_on_the_singleton_constraint(monkeypatch):
    services.wallet_init()
    before = seed_snapshot()
    # As if a concurrent init committed between our check and our insert.
    monkeypatch.setattr(type(MasterSeed.objects), "exists", lambda self: False)

    with pytest.raises(DomainError) as exc:
        services.wallet_init()

    assert exc.value.code == "wallet_exists"
    assert seed_snapshot() == before


@pytest.mark.django_db
def test_wallet_init_refuses_without_a_usable_kek():
    with override_settings(GATEWAY_KEK=""):
        with pytest.raises(ConfigurationError) as exc:
            services.wallet_init()
    assert exc.value.code == "kek_missing"
    assert not MasterSeed.objects.exists()


# --- wallet_import ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_wallet_import_stores_the_normalized_mnemonic():
    seed = services.wallet_import(mnemonic="\n  " + "Abandon  " * 11 + "ABOUT \n")

    assert services.wallet_mnemonic_reveal() == TEST_MNEMONIC
    assert hd.address_at(seed.account_xpub, 0) == TEST_ADDRESS_0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "phrase", [" ".join(["abandon"] * 12), " ".join(["abandon"] * 11 + ["notaword"]), "abandon about", ""]
)
def test_wallet_import_refuses_an_invalid_mnemonic_without_echoing_it(phrase):
    with pytest.raises(DomainError) as exc:
        services.wallet_import(mnemonic=phrase)

    assert exc.value.code == "mnemonic_invalid" and exc.value.param == "mnemonic"
    assert "abandon" not in exc.value.message and "notaword" not in exc.value.message
    assert exc.value.__cause__ is None
    assert not MasterSeed.objects.exists()


@pytest.mark.django_db
def test_wallet_import_refuses_when_a_seed_exists_and_changes_nothing():
    services.wallet_init()
    before = seed_snapshot()

    with pytest.raises(DomainError) as exc:
        services.wallet_import(mnemonic=TEST_MNEMONIC)

    assert exc.value.code == "wallet_exists"
    assert seed_snapshot() == before


# --- KEK rotation -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_rotate_kek_rewraps_the_data_key_and_leaves_the_mnemonic_alone():
    seed = services.wallet_import(mnemonic=TEST_MNEMONIC)
    old_ciphertext, old_wrapped = bytes(seed.encrypted_mnemonic), bytes(seed.wrapped_data_key)

    with rotated_settings():
        # No downtime: the new configuration reads the seed before the rotation ran ...
        assert services.wallet_mnemonic_reveal() == TEST_MNEMONIC
        rotated = services.wallet_rotate_kek()
        # ... and after it.
        assert services.wallet_mnemonic_reveal() == TEST_MNEMONIC

    stored = MasterSeed.objects.get()
    assert rotated.kek_fingerprint == stored.kek_fingerprint == crypto.kek_fingerprint(KEK_NEW)
    assert stored.kek_fingerprint != crypto.kek_fingerprint(KEK_OLD)
    assert stored.rotated is not None
    assert bytes(stored.encrypted_mnemonic) == old_ciphertext
    assert bytes(stored.wrapped_data_key) != old_wrapped
    assert stored.account_xpub == seed.account_xpub

    # A process still running the old configuration, if it knows the new KEK, keeps working;
    with override_settings(GATEWAY_KEK=b64(KEK_OLD), GATEWAY_KEK_PREVIOUS=[b64(KEK_NEW)]):
        assert services.wallet_mnemonic_reveal() == TEST_MNEMONIC
    # the old KEK can be retired;
    with override_settings(GATEWAY_KEK=b64(KEK_NEW), GATEWAY_KEK_PREVIOUS=[]):
        assert services.wallet_mnemonic_reveal() == TEST_MNEMONIC
    # and the old KEK alone no longer opens it.
    with pytest.raises(ConfigurationError) as exc:
        services.wallet_mnemonic_reveal()
    assert exc.value.code == "kek_unknown"


@pytest.mark.django_db
def test_rotate_kek_twice_in_a_row_of_keys():
    services.wallet_import(mnemonic=TEST_MNEMONIC)
    with rotated_settings():
        services.wallet_rotate_kek()
    with override_settings(GATEWAY_KEK=b64(KEK_OTHER), GATEWAY_KEK_PREVIOUS=[b64(KEK_NEW)]):
        seed = services.wallet_rotate_kek()
        assert seed.kek_fingerprint == crypto.kek_fingerprint(KEK_OTHER)
        assert services.wallet_mnemonic_reveal() == TEST_MNEMONIC


@pytest.mark.django_db
def test_rotate_kek_is_a_noop_when_the_current_kek_wrapped_it():
    services.wallet_init()
    before = seed_snapshot()

    seed = services.wallet_rotate_kek()

    assert seed.rotated is None
    assert seed_snapshot() == before


@pytest.mark.django_db
def test_rotate_kek_refuses_when_the_old_kek_is_unknown_and_changes_nothing():
    services.wallet_init()
    before = seed_snapshot()

    with override_settings(GATEWAY_KEK=b64(KEK_NEW), GATEWAY_KEK_PREVIOUS=[]):
        with pytest.raises(ConfigurationError) as exc:
            services.wallet_rotate_kek()

    assert exc.value.code == "kek_unknown"
    assert seed_snapshot() == before


@pytest.mark.django_db
def test_rotate_kek_without_a_wallet():
    with pytest.raises(ConfigurationError) as exc:
        services.wallet_rotate_kek()
    assert exc.value.code == "wallet_not_initialized"


@pytest.mark.django_db
def test_a_wrong_kek_is_a_clear_error_that_names_fingerprints_only():
    seed = services.wallet_init()

    with override_settings(GATEWAY_KEK=b64(KEK_OTHER), GATEWAY_KEK_PREVIOUS=[]):
        with pytest.raises(ConfigurationError) as exc:
            services.wallet_mnemonic_reveal()

    error = exc.value
    assert error.code == "kek_unknown" and error.status_code == 503
    assert seed.kek_fingerprint in error.message and crypto.kek_fingerprint(KEK_OTHER) in error.message
    assert "GATEWAY_KEK_PREVIOUS" in error.message
    for key in (KEK_OLD, KEK_OTHER):
        assert key.hex() not in error.message and b64(key) not in error.message


@pytest.mark.django_db
def test_a_tampered_wrapped_key_is_a_clear_error():
    seed = services.wallet_init()
    wrapped = bytes(seed.wrapped_data_key)
    MasterSeed.objects.update(wrapped_data_key=wrapped[:-1] + bytes([wrapped[-1] ^ 1]))

    with pytest.raises(ConfigurationError) as exc:
        services.wallet_mnemonic_reveal()
    assert exc.value.code == "dek_unwrap_failed"


@pytest.mark.django_db
def test_reveal_checks_the_seed_still_derives_the_stored_xpub():
    services.wallet_import(mnemonic=TEST_MNEMONIC)
    MasterSeed.objects.update(account_xpub=hd.account_xpub(" ".join(["test"] * 11 + ["junk"])))

    with pytest.raises(ConfigurationError) as exc:
        services.wallet_mnemonic_reveal()
    assert exc.value.code == "wallet_integrity"


@pytest.mark.django_db
def test_reveal_without_a_wallet():
    with pytest.raises(ConfigurationError) as exc:
        services.wallet_mnemonic_reveal()
    assert exc.value.code == "wallet_not_initialized"


# --- no secret at rest, in logs or in output ----------------------------------------------------------------


def _secret_needles(mnemonic: str, indexes: list[int]) -> dict[str, bytes]:
    """Every form in which a secret could leak, by name."""
    seed_bytes = Bip39SeedGenerator(mnemonic).Generate()
    master = Bip44.FromSeed(seed_bytes, Bip44Coins.ETHEREUM)
    entropy = Bip39MnemonicDecoder().Decode(mnemonic)
    stored = MasterSeed.objects.get()
    dek = crypto.dek_unwrap(wrapped_dek=bytes(stored.wrapped_data_key), wrapped_by=stored.kek_fingerprint)
    needles = {"mnemonic": mnemonic.encode(), "mnemonic-joined": "".join(mnemonic.split()).encode()}
    for i, window in enumerate(word_windows(mnemonic)):
        needles[f"words[{i}:{i + 3}]"] = window.encode()
    raw = {
        "entropy": entropy, "bip39-seed": seed_bytes, "dek": dek, "kek-old": KEK_OLD, "kek-new": KEK_NEW,
        "master-private-key": master.PrivateKey().Raw().ToBytes(),
    }
    for index in indexes:
        raw[f"private-key[{index}]"] = hd.private_key_at(mnemonic, index)
    for name, value in raw.items():
        needles[name] = value
        needles[f"{name}-hex"] = value.hex().encode()
        needles[f"{name}-b64"] = base64.b64encode(value)
    needles["master-xprv"] = master.PrivateKey().ToExtended().encode()
    account = master.Purpose().Coin().Account(0).Change(Bip44Changes.CHAIN_EXT)
    needles["account-xprv"] = account.PrivateKey().ToExtended().encode()
    return needles


@pytest.mark.django_db
def test_no_secret_in_any_database_row_or_log(caplog):
    caplog.set_level(logging.DEBUG)
    merchant = MerchantFactory()
    services.wallet_init()
    allocated = [services.deposit_address_allocate(merchant=merchant) for _ in range(5)]
    with rotated_settings():
        services.wallet_rotate_kek()
        mnemonic = services.wallet_mnemonic_reveal()
        needles = _secret_needles(mnemonic, [0, *(a.index for a in allocated)])
        out = io.StringIO()
        call_command("wallet", "status", stdout=out)
        call_command("wallet", "status", "--json", stdout=out)

    dump = database_dump()
    everything = b"\n".join(dump.values())
    # The scan does read the wallet's rows (positive controls) ...
    seed = MasterSeed.objects.get()
    assert {"wallets_masterseed", "wallets_depositaddress", "merchants_merchant"} <= set(dump)
    assert seed.account_xpub.encode() in dump["wallets_masterseed"]
    assert bytes(seed.encrypted_mnemonic) in dump["wallets_masterseed"]
    assert bytes(seed.encrypted_mnemonic).hex().encode() in dump["wallets_masterseed"]
    assert all(a.address.encode() in dump["wallets_depositaddress"] for a in allocated)
    assert seed.kek_fingerprint in caplog.text
    # ... and finds no secret anywhere: not in the database, not in the logs, not in the command output.
    assert leaks(everything, needles) == []
    assert leaks(caplog.text.encode(), needles) == []
    assert leaks(out.getvalue().encode(), needles) == []


# --- deposit addresses ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_deposit_address_allocate_derives_from_the_xpub(merchant):
    seed = MasterSeedFactory()

    with transaction.atomic():  # callable inside the caller's transaction
        first = services.deposit_address_allocate(merchant=merchant)
    second = services.deposit_address_allocate(merchant=merchant)

    assert second.index > first.index
    for row in (first, second):
        row.refresh_from_db()
        assert row.merchant == merchant
        assert row.address == hd.address_at(seed.account_xpub, row.index)
        assert row.address == hd.address_at(hd.account_xpub(TEST_MNEMONIC), row.index)
        assert row.address == row.address.lower() and len(row.address) == 42
    assert selectors.deposit_address_next_index() == second.index + 1


@pytest.mark.django_db
def test_deposit_address_allocate_without_a_wallet_is_a_configuration_error(merchant):
    with pytest.raises(ConfigurationError) as exc:
        services.deposit_address_allocate(merchant=merchant)

    assert exc.value.code == "wallet_not_initialized" and exc.value.status_code == 503
    assert "manage.py wallet init" in exc.value.message
    assert not DepositAddress.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_allocation_burns_its_index():
    MasterSeedFactory()
    merchant = MerchantFactory()

    with pytest.raises(RuntimeError):
        with transaction.atomic():
            burnt = services.deposit_address_allocate(merchant=merchant)
            raise RuntimeError("the payment failed after the address was allocated")
    after = services.deposit_address_allocate(merchant=merchant)

    assert not DepositAddress.objects.filter(index=burnt.index).exists()
    assert after.index > burnt.index and after.address != burnt.address
    assert list(DepositAddress.objects.values_list("index", flat=True)) == [after.index]


def _in_thread(target, *args):
    """Run target in a thread with its own connection, closed at the end; re-raise its exception here."""
    outcome = {}

    def run():
        try:
            outcome["value"] = target(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.mark.django_db(transaction=True)
def test_concurrent_allocations_get_distinct_indexes_and_addresses():
    seed = MasterSeedFactory()
    merchants = [MerchantFactory() for _ in range(4)]
    threads_count, per_thread = 16, 15
    barrier = threading.Barrier(threads_count)

    def allocate_many(n):
        barrier.wait(timeout=30)
        rows = []
        for i in range(per_thread):
            merchant = merchants[(n + i) % len(merchants)]
            if i % 2:
                with transaction.atomic():  # inside a caller's transaction, as payment creation does
                    rows.append(services.deposit_address_allocate(merchant=merchant))
            else:
                rows.append(services.deposit_address_allocate(merchant=merchant))
        return [(row.index, row.address) for row in rows]

    started = [_in_thread(allocate_many, n) for n in range(threads_count)]
    for thread, _ in started:
        thread.join(timeout=120)
        assert not thread.is_alive()
    errors = [outcome["error"] for _, outcome in started if "error" in outcome]
    assert errors == []

    allocated = [pair for _, outcome in started for pair in outcome["value"]]
    total = threads_count * per_thread
    assert len(allocated) == total
    assert len({index for index, _ in allocated}) == total
    assert len({address for _, address in allocated}) == total
    stored = dict(DepositAddress.objects.values_list("index", "address"))
    assert stored == dict(allocated)
    assert all(address == hd.address_at(seed.account_xpub, index) for index, address in stored.items())


@pytest.mark.django_db(transaction=True)
def test_an_open_transaction_does_not_block_other_allocations():
    MasterSeedFactory()
    merchant = MerchantFactory()

    with transaction.atomic():
        held = services.deposit_address_allocate(merchant=merchant)
        # While this transaction is open, another connection allocates and commits without waiting.
        thread, outcome = _in_thread(lambda: services.deposit_address_allocate(merchant=merchant).index)
        thread.join(timeout=10)
        assert not thread.is_alive(), "allocation blocked on another open transaction"
        assert "error" not in outcome
        assert outcome["value"] != held.index


# --- the management command -------------------------------------------------------------------------------------


def run(*args, **kwargs) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("wallet", *args, stdout=out, stderr=err, **kwargs)
    return out.getvalue() + err.getvalue()


@pytest.mark.django_db
def test_command_init_prints_fingerprints_but_not_the_mnemonic():
    output = run("init")

    seed = MasterSeed.objects.get()
    mnemonic = services.wallet_mnemonic_reveal()
    assert seed.kek_fingerprint in output
    assert hd.xpub_fingerprint(seed.account_xpub) in output
    assert hd.address_at(seed.account_xpub, 0) in output
    assert not any(w in output for w in word_windows(mnemonic, 2))


@pytest.mark.django_db
def test_command_init_json():
    data = json.loads(run("init", "--json", "--words", "12"))

    seed = MasterSeed.objects.get()
    assert data["initialized"] is True and "mnemonic" not in data
    assert data["kek_fingerprint"] == seed.kek_fingerprint and data["kek_is_current"] is True
    assert data["first_address"] == hd.address_at(seed.account_xpub, 0)
    assert len(services.wallet_mnemonic_reveal().split()) == 12


@pytest.mark.django_db
def test_command_init_shows_the_mnemonic_once_when_asked():
    output = run("init", "--show-mnemonic")
    assert services.wallet_mnemonic_reveal() in output
    assert "will not be shown again" in output


@pytest.mark.django_db
def test_command_init_json_with_mnemonic():
    data = json.loads(run("init", "--json", "--show-mnemonic"))
    assert data["mnemonic"] == services.wallet_mnemonic_reveal()


@pytest.mark.django_db
def test_command_init_refuses_a_second_seed():
    run("init")
    before = seed_snapshot()
    with pytest.raises(CommandError, match="wallet_exists"):
        run("init")
    assert seed_snapshot() == before


@pytest.mark.django_db
def test_command_import_from_stdin():
    output = run("import", stdin=io.StringIO(TEST_MNEMONIC + "\n"))

    assert TEST_ADDRESS_0 in output and "abandon" not in output
    assert services.wallet_mnemonic_reveal() == TEST_MNEMONIC


@pytest.mark.django_db
def test_command_import_from_a_file(tmp_path):
    path = tmp_path / "backup.txt"
    path.write_text(TEST_MNEMONIC.upper() + "\n")

    data = json.loads(run("import", "--mnemonic-file", str(path), "--json"))

    assert data["first_address"] == TEST_ADDRESS_0


@pytest.mark.django_db
def test_command_import_refuses_an_invalid_mnemonic_without_echoing_it():
    with pytest.raises(CommandError) as exc:
        run("import", stdin=io.StringIO(" ".join(["abandon"] * 12)))
    assert "mnemonic_invalid" in str(exc.value) and "abandon" not in str(exc.value)
    assert not MasterSeed.objects.exists()


@pytest.mark.django_db
def test_command_import_does_not_take_the_mnemonic_from_the_command_line():
    with pytest.raises(CommandError, match="never taken from the command line") as exc:
        run("import", *TEST_MNEMONIC.split())
    assert "abandon" not in str(exc.value)
    assert not MasterSeed.objects.exists()


@pytest.mark.django_db
def test_command_status_without_a_wallet():
    assert json.loads(run("status", "--json")) == {"initialized": False}
    assert "manage.py wallet init" in run("status")


@pytest.mark.django_db
def test_command_status(merchant):
    seed = MasterSeedFactory()
    rows = [services.deposit_address_allocate(merchant=merchant) for _ in range(3)]

    data = json.loads(run("status", "--json"))

    assert data == {
        "initialized": True,
        "kek_fingerprint": seed.kek_fingerprint,
        "kek_is_current": True,
        "kek_is_known": True,
        "xpub_fingerprint": hd.xpub_fingerprint(seed.account_xpub),
        "first_address": TEST_ADDRESS_0,
        "created": seed.created.isoformat(),
        "rotated": None,
        "addresses_issued": 3,
        "next_index": rows[-1].index + 1,
    }
    text = run("status")
    assert seed.kek_fingerprint in text and "(current)" in text and "addresses issued:  3" in text
    with rotated_settings():
        assert "rotate-kek" in run("status")
    with override_settings(GATEWAY_KEK=b64(KEK_OTHER)):
        assert "UNKNOWN" in run("status")


@pytest.mark.django_db
def test_command_rotate_kek():
    MasterSeedFactory()
    old = crypto.kek_fingerprint(KEK_OLD)
    new = crypto.kek_fingerprint(KEK_NEW)

    with rotated_settings():
        output = run("rotate-kek")
        again = json.loads(run("rotate-kek", "--json"))

    assert old in output and new in output
    assert again == {"rotated": False, "previous_kek_fingerprint": new, "kek_fingerprint": new}
    assert MasterSeed.objects.get().kek_fingerprint == new


@pytest.mark.django_db
def test_command_rotate_kek_json_and_errors():
    MasterSeedFactory()
    with rotated_settings():
        data = json.loads(run("rotate-kek", "--json"))
    assert data["rotated"] is True and data["kek_fingerprint"] == crypto.kek_fingerprint(KEK_NEW)
    with pytest.raises(CommandError, match="kek_unknown"):
        run("rotate-kek")  # back on the old KEK only: the new wrapping is unknown
