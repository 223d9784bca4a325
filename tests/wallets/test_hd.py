import pytest
from eth_account import Account
from eth_keys import keys as eth_keys

from wallets import hd

TEST_MNEMONIC = " ".join(["abandon"] * 11 + ["about"])
HARDHAT_MNEMONIC = " ".join(["test"] * 11 + ["junk"])


@pytest.fixture(scope="module")
def xpub():
    return hd.account_xpub(TEST_MNEMONIC)


def eth_address(private_key: bytes) -> str:
    """An independent implementation (eth-keys) of private key -> address."""
    return eth_keys.PrivateKey(private_key).public_key.to_address().lower()


# --- known vectors --------------------------------------------------------------------------------------------


def test_known_vector_abandon_about(xpub):
    assert xpub.startswith("xpub")
    assert hd.address_at(xpub, 0) == "0x9858effd232b4033e47d90003d41ec34ecaeda94"
    assert hd.address_at(xpub, 1) == "0x6fac4d18c912343bf86fa7049364dd4e424ab9c0"


def test_known_vector_hardhat_accounts():
    """The well-known development accounts of `test test ... junk` (hardhat, anvil)."""
    xpub = hd.account_xpub(HARDHAT_MNEMONIC)
    assert hd.address_at(xpub, 0) == "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
    assert hd.address_at(xpub, 1) == "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
    assert hd.private_key_at(HARDHAT_MNEMONIC, 0).hex() == (
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    )


@pytest.mark.parametrize("index", [0, 1, 2, 19, 1000, 123_456, hd.MAX_INDEX])
def test_private_key_at_controls_address_at(xpub, index):
    private_key = hd.private_key_at(TEST_MNEMONIC, index)
    assert len(private_key) == 32
    assert eth_address(private_key) == hd.address_at(xpub, index)


@pytest.mark.parametrize("index", [0, 5, 77])
def test_agrees_with_eth_account_hd_wallet(xpub, index):
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(TEST_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    assert hd.address_at(xpub, index) == account.address.lower()
    assert hd.private_key_at(TEST_MNEMONIC, index) == bytes(account.key)


def test_addresses_are_lower_case_0x_hex_and_distinct(xpub):
    addresses = [hd.address_at(xpub, i) for i in range(50)]
    assert len(set(addresses)) == 50
    for address in addresses:
        assert len(address) == 42 and address.startswith("0x") and address == address.lower()
        int(address, 16)


# --- the xpub ---------------------------------------------------------------------------------------------------


def test_parsed_xpub_is_cached_per_process(xpub):
    hd._account_node.cache_clear()
    hd.address_at(xpub, 3)
    hd.address_at(xpub, 4)
    hd.xpub_fingerprint(xpub)
    info = hd._account_node.cache_info()
    assert info.misses == 1 and info.hits == 2


def test_xpub_fingerprint_is_short_and_stable(xpub):
    fp = hd.xpub_fingerprint(xpub)
    assert len(fp) == 8 and fp == hd.xpub_fingerprint(xpub)
    assert fp != hd.xpub_fingerprint(hd.account_xpub(HARDHAT_MNEMONIC))


def test_address_at_refuses_a_private_extended_key():
    xprv = hd._account_node_private(TEST_MNEMONIC).PrivateKey().ToExtended()
    assert xprv.startswith("xprv")
    with pytest.raises(ValueError) as exc:
        hd.address_at(xprv, 0)
    assert "xprv" not in str(exc.value) and xprv not in str(exc.value)


def test_address_at_refuses_an_xpub_at_another_level():
    coin_level = hd._account_node_private(TEST_MNEMONIC)  # m/44'/60'/0'/0
    from bip_utils import Bip39SeedGenerator, Bip44, Bip44Coins

    account = Bip44.FromSeed(Bip39SeedGenerator(TEST_MNEMONIC).Generate(), Bip44Coins.ETHEREUM).Purpose().Coin()
    account = account.Account(0)  # m/44'/60'/0' (one level too high)
    assert coin_level.PublicKey().ToExtended() != account.PublicKey().ToExtended()
    with pytest.raises(ValueError, match="external chain"):
        hd.address_at(account.PublicKey().ToExtended(), 0)


@pytest.mark.parametrize("bad", ["", "xpub-garbage", "0x9858effd232b4033e47d90003d41ec34ecaeda94"])
def test_address_at_refuses_garbage(bad):
    with pytest.raises(ValueError, match="Not a valid"):
        hd.address_at(bad, 0)


@pytest.mark.parametrize("index", [-1, hd.MAX_INDEX + 1, 2**32, True, 1.0, "1"])
def test_address_at_refuses_indexes_out_of_the_non_hardened_range(xpub, index):
    with pytest.raises(ValueError, match="index"):
        hd.address_at(xpub, index)


# --- mnemonics ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("words", [12, 24])
def test_generated_mnemonics_are_valid_random_and_sized(words):
    one, two = hd.mnemonic_generate(words=words), hd.mnemonic_generate(words=words)
    assert len(one.split()) == words and one != two
    assert hd.mnemonic_validate(one) == one


def test_generate_refuses_odd_sizes():
    with pytest.raises(ValueError):
        hd.mnemonic_generate(words=13)


def test_validate_normalizes_case_and_spacing():
    messy = "  " + "  ABANDON\t" * 11 + "About\n"
    assert hd.mnemonic_validate(messy) == TEST_MNEMONIC
    assert hd.account_xpub(messy) == hd.account_xpub(TEST_MNEMONIC)


@pytest.mark.parametrize(
    "phrase, hint",
    [
        (" ".join(["abandon"] * 12), "checksum"),  # valid words, bad checksum
        (" ".join(["abandon"] * 11 + ["zzzzzz"]), "word list"),
        (" ".join(["abandon"] * 11), "has 11"),
        ("", "has 0"),
    ],
)
def test_invalid_mnemonics_are_refused_without_echoing_words(phrase, hint):
    with pytest.raises(hd.MnemonicError) as exc:
        hd.mnemonic_validate(phrase)
    message = str(exc.value)
    assert hint in message
    assert "abandon" not in message and "zzzzzz" not in message
    assert exc.value.__cause__ is None
    assert exc.value.__context__ is None or exc.value.__suppress_context__


def test_private_key_at_refuses_an_invalid_mnemonic():
    with pytest.raises(hd.MnemonicError):
        hd.private_key_at(" ".join(["abandon"] * 12), 0)
