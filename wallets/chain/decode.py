"""Hand decoding of ERC-20 Transfer logs for the hot path (raw eth_getLogs dicts; about 10x web3's event decoding).

Addresses come out lower-case 0x hex (never checksummed: compare lower-case on the hot path), numbers as int.
"""
from eth_utils import keccak

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
assert TRANSFER_TOPIC == "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"

_ZERO_PAD = "0x000000000000000000000000"


def decode_transfer_log(log: dict) -> tuple[str, str, str, int, int, str, str, int] | None:
    """(token_address, from, to, amount, block_number, block_hash, tx_hash, log_index) of a standard ERC-20 Transfer
    log, or None for anything else: another event, ERC-721 style (4 topics), missing data, a malformed topic."""
    topics = log.get("topics")
    if not topics or len(topics) != 3:
        return None
    topic0, sender, recipient = topics
    if topic0.lower() != TRANSFER_TOPIC:
        return None
    if len(sender) != 66 or len(recipient) != 66 or not sender.lower().startswith(_ZERO_PAD) \
            or not recipient.lower().startswith(_ZERO_PAD):
        return None  # not a left-padded address
    data = log.get("data")
    if not data or len(data) != 66:  # exactly one uint256 word
        return None
    try:
        return (
            log["address"].lower(),
            "0x" + sender[26:].lower(),
            "0x" + recipient[26:].lower(),
            int(data, 16),
            int(log["blockNumber"], 16),
            log["blockHash"].lower(),
            log["transactionHash"].lower(),
            int(log["logIndex"], 16),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None  # a pending log (null block fields) or garbage


# The stablecoin issuers' own freezes: Tether's USDT `AddedBlackList(address _user)` (not indexed: the address is the
# data word) and Circle's USDC `Blacklisted(address indexed _account)` (topic 1). Fetched in the scanner's one
# eth_getLogs call beside Transfer (topic0 is an OR list).
ADDED_BLACKLIST_TOPIC = "0x" + keccak(text="AddedBlackList(address)").hex()
BLACKLISTED_TOPIC = "0x" + keccak(text="Blacklisted(address)").hex()
BLACKLIST_EVENTS = {ADDED_BLACKLIST_TOPIC: "AddedBlackList", BLACKLISTED_TOPIC: "Blacklisted"}
SCANNED_TOPICS = [[TRANSFER_TOPIC, ADDED_BLACKLIST_TOPIC, BLACKLISTED_TOPIC]]


def decode_blacklist_log(log: dict) -> tuple[str, str, str, int, str, str, int] | None:
    """(token_address, event name, blacklisted address, block_number, block_hash, tx_hash, log_index) of an issuer
    blacklist log, or None for anything else."""
    topics = log.get("topics") or []
    if not topics or log.get("removed"):
        return None
    event = BLACKLIST_EVENTS.get(str(topics[0]).lower())
    if event is None:
        return None
    if event == "Blacklisted" and len(topics) == 2:
        word = str(topics[1])
    elif event == "AddedBlackList" and len(topics) == 1:
        word = str(log.get("data") or "")
    else:
        return None
    if len(word) != 66 or not word.lower().startswith(_ZERO_PAD):
        return None
    try:
        return (log["address"].lower(), event, "0x" + word[26:].lower(), int(log["blockNumber"], 16),
                log["blockHash"].lower(), log["transactionHash"].lower(), int(log["logIndex"], 16))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
