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
