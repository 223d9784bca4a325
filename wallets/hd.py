"""BIP39 mnemonics and BIP32/BIP44 derivation of the deposit addresses, with bip-utils.

Every deposit address is m/44'/60'/0'/0/<index> (BIP44, Ethereum coin type, account 0, external chain). The account
node's extended public key (the "xpub", stored in MasterSeed.account_xpub) is enough to derive every address, so the
web tier derives addresses without any secret; only sweeping needs the mnemonic (`private_key_at`).

Nothing here logs, and no error message contains a word of a mnemonic or a byte of a private key.
"""
import unicodedata
from functools import lru_cache

from bip_utils import (
    Bip32Secp256k1,
    Bip39Languages,
    Bip39MnemonicGenerator,
    Bip39MnemonicValidator,
    Bip39SeedGenerator,
    Bip44,
    Bip44Changes,
    Bip44Coins,
    Bip44Levels,
    EthAddrEncoder,
)
from django.views.decorators.debug import sensitive_variables

ACCOUNT_PATH = "m/44'/60'/0'/0"
WORD_COUNTS = (12, 15, 18, 21, 24)
MAX_INDEX = 2**31 - 1  # the last non-hardened BIP32 index: public derivation cannot go further


class MnemonicError(ValueError):
    """The phrase is not a valid BIP39 English mnemonic. The message never repeats the phrase."""


def mnemonic_normalize(mnemonic: str) -> str:
    """NFKD, lower case, single spaces: the form BIP39 hashes and the form we store."""
    return " ".join(unicodedata.normalize("NFKD", mnemonic).lower().split())


@sensitive_variables()
def mnemonic_generate(*, words: int = 24) -> str:
    """A new random English BIP39 mnemonic (24 words = 256 bits of entropy from the OS CSPRNG)."""
    if words not in WORD_COUNTS:
        raise ValueError(f"A BIP39 mnemonic has 12, 15, 18, 21 or 24 words, not {words}.")
    return Bip39MnemonicGenerator(Bip39Languages.ENGLISH).FromWordsNumber(words).ToStr()


@sensitive_variables()
def mnemonic_validate(mnemonic: str) -> str:
    """The normalized mnemonic; raises MnemonicError (which does not contain the words) if it is not valid BIP39."""
    if not isinstance(mnemonic, str):
        raise MnemonicError("The mnemonic must be text.")
    normalized = mnemonic_normalize(mnemonic)
    count = len(normalized.split())
    if count not in WORD_COUNTS:
        raise MnemonicError(f"A BIP39 mnemonic has 12, 15, 18, 21 or 24 words; this one has {count}.")
    try:
        Bip39MnemonicValidator(Bip39Languages.ENGLISH).Validate(normalized)
    except Exception:  # bip-utils' messages are word-free, but do not chain them anyway
        raise MnemonicError(
            "The mnemonic is not a valid BIP39 English phrase: a word is not in the BIP39 word list or the checksum "
            "does not match (the words are not repeated here)."
        ) from None
    return normalized


@sensitive_variables()
def _account_node_private(mnemonic: str) -> Bip44:
    seed = Bip39SeedGenerator(mnemonic_validate(mnemonic), Bip39Languages.ENGLISH).Generate()
    return (
        Bip44.FromSeed(seed, Bip44Coins.ETHEREUM).Purpose().Coin().Account(0).Change(Bip44Changes.CHAIN_EXT)
    )


@sensitive_variables()
def account_xpub(mnemonic: str) -> str:
    """The extended public key of m/44'/60'/0'/0, what MasterSeed.account_xpub stores."""
    return _account_node_private(mnemonic).PublicKey().ToExtended()


@sensitive_variables()
def private_key_at(mnemonic: str, index: int) -> bytes:
    """The 32-byte secp256k1 private key of m/44'/60'/0'/0/<index> (for sweeping)."""
    _check_index(index)
    node = _account_node_private(mnemonic).AddressIndex(index)
    return node.PrivateKey().Raw().ToBytes()


@lru_cache(maxsize=16)
def _account_node(xpub: str) -> Bip32Secp256k1:
    """The parsed, validated account node of an xpub. Parsing costs as much as deriving, hence the cache."""
    try:
        ctx = Bip44.FromExtendedKey(xpub, Bip44Coins.ETHEREUM)
    except Exception:  # Bip32KeyError, Base58ChecksumError, ValueError ...: not chained, in case it was an xprv
        raise ValueError("Not a valid BIP32 extended public key.") from None
    if not ctx.IsPublicOnly():
        raise ValueError("An extended private key was given: address derivation takes the account xpub only.")
    if ctx.Level() != Bip44Levels.CHANGE:
        raise ValueError(f"The extended key is not at the account's external chain ({ACCOUNT_PATH}).")
    return ctx.Bip32Object()


def _check_index(index: int) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
        raise ValueError(f"An address index is an integer from 0 to {MAX_INDEX}.")


def address_at(xpub: str, index: int) -> str:
    """The lower-case 0x address of m/44'/60'/0'/0/<index>, derived from the account xpub alone."""
    _check_index(index)
    child = _account_node(xpub).ChildKey(index)
    return EthAddrEncoder.EncodeKey(child.PublicKey().KeyObject(), skip_chksum_enc=True)


def xpub_fingerprint(xpub: str) -> str:
    """The BIP32 fingerprint (first 4 bytes of HASH160 of the public key, hex) of the account node: a short public
    name that lets an operator check two installations hold the same wallet."""
    return _account_node(xpub).FingerPrint().ToHex()
