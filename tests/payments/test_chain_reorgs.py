"""Reorgs before finality, seen from the payment intent, on a real anvil (issue 3): the removed transfer no longer
counts, the intent goes back, a replacement transaction in the new chain is credited once.

The chain is this module's own (rewriting history must not disturb the other tests' chain); the fixtures and helpers
are those of tests/payments/conftest.py. anvil's `finalized` tag is head-2, so a payment one or two blocks from the
head is not final; for deeper reorgs the network counts confirmations instead (as tests/wallets/chain/test_scanner.py
does), which keeps the payment's block non-final under the reorg."""
import pytest

from audit.models import AuditRecord
from payments.corrections import held_deposit_release
from payments.models import Charge, Event, HeldDeposit
from tests.chain import running_anvil
from tests.payments.conftest import charges_of, create, event_types, get, mined, settle, simulate
from tests.staff import staff_user
from wallets.blocklist import blocked_address_add
from wallets.devchain import rpc
from wallets.models import Network, Transfer

DEEP_CONFIRMATIONS = 10


@pytest.fixture(scope="module")
def devnet_chain():
    with running_anvil() as chain:
        yield chain


def head(chain) -> int:
    return int(rpc(chain.rpc_url, "eth_blockNumber"), 16)


def blocks_to_final(network: Network, depth: int) -> int:
    """Keep the payment's block non-final through a reorg of `depth` blocks; how many blocks then make a new one
    final."""
    if depth <= 2:
        return 2  # the finalized tag: head - 2
    network.finality, network.confirmations = Network.Finality.CONFIRMATIONS, DEEP_CONFIRMATIONS
    network.save(update_fields=["finality", "confirmations"])
    return DEEP_CONFIRMATIONS


def reorg_away(network, chain, *, method: str, depth: int) -> None:
    """Replace the last `depth` blocks (the payment's the deepest of them) with `depth` blocks without it."""
    tip = head(chain)
    if method == "anvil_reorg":  # re-mined in place: the head's number stays, its hash changes
        rpc(chain.rpc_url, "anvil_reorg", [depth, []])
    else:
        rpc(chain.rpc_url, "anvil_rollback", [depth])
        assert head(chain) == tip - depth
        settle(network, chain)  # the node is behind our cursor and agrees below it: nothing to undo yet
        assert not Transfer.objects.filter(orphaned_at__isnull=False).exists()
        rpc(chain.rpc_url, "anvil_mine", [hex(depth)])
    assert head(chain) == tip


@pytest.mark.parametrize("method", ["anvil_reorg", "anvil_rollback"])
@pytest.mark.parametrize("depth", [1, 2, 5])
def test_a_reorg_takes_a_payment_back_and_the_replacement_is_credited_once(api, devnet, devnet_chain, depth, method):
    chain = devnet_chain
    to_final = blocks_to_final(devnet, depth)
    settle(devnet, chain)  # the cursor starts at the head
    intent = create(api, amount=1000)

    # Given an intent paid in full, the payment `depth` blocks from the head: seen, not final
    response = simulate(api, intent["id"])
    assert response.status_code == 200, response.json()
    original = response.json()["test_helper"]["transaction_hash"]
    settle(devnet, chain, mine_blocks=depth - 1)
    seen = get(api, intent["id"])
    assert seen["status"] == "processing" and seen["amount_received"] == 0
    [transfer] = Transfer.objects.all()
    assert transfer.tx_hash == original and transfer.finalized_at is None

    # When the payment's block and those above it are replaced by blocks without it
    reorg_away(devnet, chain, method=method, depth=depth)
    steps = settle(devnet, chain)
    assert max(s.reorg_depth for s in steps) == depth

    # Then the transfer no longer counts: the intent waits again with nothing received, and says so; the transfer's
    # row stays, orphaned
    back = get(api, intent["id"])
    assert back["status"] == "requires_action" and back["amount_received"] == 0 and back["latest_charge"] is None
    assert back["next_action"]["type"] == "crypto_display_details"  # the customer can pay again
    assert event_types(intent["id"])[2:] == ["payment_intent.processing", "payment_intent.reversed"]
    reversed_event = Event.objects.get(object_id=intent["id"], type="payment_intent.reversed")
    assert reversed_event.data["object"]["status"] == "requires_action"
    assert reversed_event.data["previous_attributes"] == {"status": "processing"}
    transfer.refresh_from_db()
    assert transfer.orphaned_at is not None and transfer.finalized_at is None
    assert Transfer.objects.count() == 1 and charges_of(api, intent["id"]) == []
    assert rpc(chain.rpc_url, "eth_getTransactionReceipt", [original]) is None  # in no block of the new chain

    # When the customer pays again in the new chain, and that payment becomes final
    response = simulate(api, intent["id"])
    assert response.status_code == 200, response.json()
    replacement = response.json()["test_helper"]["transaction_hash"]
    settle(devnet, chain)
    assert get(api, intent["id"])["status"] == "processing"
    settle(devnet, chain, mine_blocks=to_final)

    # Then the replacement alone is credited, once, and the intent succeeds
    paid = get(api, intent["id"])
    assert paid["status"] == "succeeded" and paid["amount_received"] == 1000
    [charge] = charges_of(api, intent["id"])
    assert charge["status"] == "succeeded" and charge["amount"] == 1000 and paid["latest_charge"] == charge["id"]
    assert charge["payment_method_details"]["crypto"]["transaction_hash"] == replacement
    assert Charge.objects.count() == 1
    live = Transfer.objects.get(orphaned_at__isnull=True)
    assert live.tx_hash == replacement and live.is_final and live.id != transfer.id
    transfer.refresh_from_db()
    assert transfer.orphaned_at is not None and transfer.finalized_at is None
    assert event_types(intent["id"]) == [
        "payment_intent.created", "payment_intent.requires_action", "payment_intent.processing",
        "payment_intent.reversed", "payment_intent.processing", "payment_intent.succeeded",
    ]
    assert event_types(charge["id"]) == ["charge.succeeded"]

    # and scanning and applying again changes nothing
    settle(devnet, chain, mine_blocks=1)
    assert get(api, intent["id"])["status"] == "succeeded" and Charge.objects.count() == 1
    assert Event.objects.count() == 7


def test_a_reorg_takes_back_only_the_part_it_removed(api, devnet, devnet_chain):
    chain = devnet_chain
    settle(devnet, chain)
    intent = create(api, amount=1000)

    # Given 4.00 of 10.00 paid and final (credited: a Charge), and the remaining 6.00 seen, not final
    assert simulate(api, intent["id"], amount=4 * 10**18).status_code == 200
    settle(devnet, chain, mine_blocks=2)
    [first] = charges_of(api, intent["id"])
    assert simulate(api, intent["id"], amount=6 * 10**18).status_code == 200
    settle(devnet, chain, mine_blocks=1)
    seen = get(api, intent["id"])
    assert seen["status"] == "processing" and seen["amount_received"] == 400

    # When the block of the 6.00 is re-mined without it
    reorg_away(devnet, chain, method="anvil_reorg", depth=2)
    settle(devnet, chain)

    # Then only the 6.00 stops counting: the intent waits for it again, the final 4.00 keeps its Charge
    back = get(api, intent["id"])
    assert back["status"] == "requires_action" and back["amount_received"] == 400
    assert back["latest_charge"] == first["id"]
    assert [(c["id"], c["status"]) for c in charges_of(api, intent["id"])] == [(first["id"], "succeeded")]
    assert Transfer.objects.filter(orphaned_at__isnull=False).get().amount_base_units == 6 * 10**18

    # When the 6.00 is paid again and becomes final: each part credited once
    assert simulate(api, intent["id"], amount=6 * 10**18).status_code == 200
    settle(devnet, chain, mine_blocks=2)
    paid = get(api, intent["id"])
    assert paid["status"] == "succeeded" and paid["amount_received"] == 1000
    charges = charges_of(api, intent["id"])
    assert sorted((c["amount"], c["status"]) for c in charges) == [(400, "succeeded"), (600, "succeeded")]
    assert event_types(intent["id"])[2:] == [
        "payment_intent.partially_funded", "payment_intent.processing", "payment_intent.reversed",
        "payment_intent.processing", "payment_intent.succeeded",
    ]


def test_a_released_deposit_the_reorg_re_mines_stays_released_and_is_credited_once(api, devnet, devnet_chain):
    chain = devnet_chain
    sender = chain.accounts[6]
    blocked_address_add(address=sender, reason="case 3", actor="command:test")
    settle(devnet, chain)
    intent = create(api, amount=1000)
    address = get(api, intent["id"])["next_action"]["crypto_display_details"]["deposit_addresses"]["bsc"]["address"]

    # Given the blocked sender's payment seen (not final), held, and released by staff. Signed here, so that the very
    # same transaction (same hash) can be mined again after the reorg, as on a real chain (anvil_reorg's replay
    # would re-sign it: another hash, another on-chain transfer).
    data = "0xa9059cbb" + address[2:].rjust(64, "0") + hex(10 * 10**18)[2:].rjust(64, "0")
    raw = rpc(chain.rpc_url, "eth_signTransaction", [{
        "from": sender, "to": chain.tokens["usdt"], "data": data, "gas": hex(100_000),
        "gasPrice": rpc(chain.rpc_url, "eth_gasPrice"), "chainId": rpc(chain.rpc_url, "eth_chainId"),
        "nonce": rpc(chain.rpc_url, "eth_getTransactionCount", [sender, "latest"]),
    }])
    tx_hash = rpc(chain.rpc_url, "eth_sendRawTransaction", [raw])
    assert mined(chain.rpc_url, tx_hash)["status"] == "0x1"
    settle(devnet, chain)
    first = HeldDeposit.objects.get()
    first = held_deposit_release(hold=first, actor=staff_user("security"), reason="sender cleared, ticket 7")
    assert get(api, intent["id"])["status"] == "processing"

    # When a reorg replaces its block with an empty one and the same signed transaction is mined in the next block
    rpc(chain.rpc_url, "anvil_rollback", [1])
    rpc(chain.rpc_url, "anvil_mine", ["0x1"])
    assert rpc(chain.rpc_url, "eth_sendRawTransaction", [raw]) == tx_hash
    assert mined(chain.rpc_url, tx_hash)["status"] == "0x1"
    settle(devnet, chain)

    # Then the new row (same transaction, same log) has a hold released with the same decision, counted at once
    old, new = Transfer.objects.order_by("id")
    assert (old.tx_hash, old.log_index) == (new.tx_hash, new.log_index) == (tx_hash, old.log_index)
    assert old.orphaned_at is not None and new.orphaned_at is None and new.block_hash != old.block_hash
    second = HeldDeposit.objects.get(transfer=new)
    assert (second.status, second.decision_reason, second.decided_at) == (
        "released", "sender cleared, ticket 7", first.decided_at)
    assert AuditRecord.objects.get(action="held_deposit.carry_over").object_id == second.id
    assert get(api, intent["id"])["status"] == "processing"

    # and once final, the intent succeeds once, with one Charge of the new row
    settle(devnet, chain, mine_blocks=2)
    paid = get(api, intent["id"])
    assert paid["status"] == "succeeded" and paid["amount_received"] == 1000
    assert Charge.objects.get().transfer_id == new.id
    # (the orphaned row and the new one came in one scanner step, one apply: the intent never went back)
    assert event_types(intent["id"])[2:] == ["payment_intent.processing", "payment_intent.succeeded"]
