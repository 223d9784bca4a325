"""The transaction manager's limits on anvil: fee bumps stop at the network's ceiling, only the lowest open nonce of
an address is replaced, a replacement is numbered after every attempt and outbids the highest of them, one bad row
never stops the signer or the sender, and a queued transaction can be cancelled without leaving a nonce gap."""
import pytest

from tests.wallets.outgoing.conftest import balance, mine, sign_all
from tests.wallets.outgoing.test_manager import RECIPIENT, process, send, statuses
from wallets import signer as boundary
from wallets import tasks as wallet_tasks
from wallets.devchain import rpc
from wallets.outgoing import services
from wallets.outgoing.fees import fee_bump
from wallets.outgoing.models import OutgoingAttempt, OutgoingTransaction, OutgoingTransactionEvent

S = OutgoingTransaction.Status


def replace_at_once(network, **fields):
    network.tx_replace_seconds = 0  # replace at the first pass that finds it pending
    for name, value in fields.items():
        setattr(network, name, value)
    network.save(update_fields=["tx_replace_seconds", *fields])


def ceiling_events(tx):
    return OutgoingTransactionEvent.objects.filter(transaction=tx, detail__reason=services.FEE_CEILING)


def test_fee_bumps_of_a_stuck_transaction_stop_at_the_networks_multiple_of_the_first_fees(chain, network, hot, client):
    replace_at_once(network)  # the default ceiling: 4x the first attempt's fees
    ceiling = 4
    tx = send(network)
    sign_all()
    first = OutgoingAttempt.objects.get(transaction=tx)
    rpc(chain.rpc_url, "evm_setAutomine", [False])  # never mined: the sender keeps finding it pending
    for _ in range(40):  # two passes a bump (replace, then broadcast the new attempt): room for 20 bumps
        process(network, client)
        sign_all()
    attempts = list(OutgoingAttempt.objects.filter(transaction=tx).order_by("number"))
    assert 2 <= len(attempts) <= 13  # +12.5 % a bump: 4x is reached after 11, then no more
    assert all(a.max_fee_per_gas <= ceiling * first.max_fee_per_gas for a in attempts)
    assert all(a.max_priority_fee_per_gas <= ceiling * first.max_priority_fee_per_gas for a in attempts)
    last = attempts[-1]  # the next bump would pass the ceiling
    assert (fee_bump(last.max_fee_per_gas) > ceiling * first.max_fee_per_gas
            or fee_bump(last.max_priority_fee_per_gas) > ceiling * first.max_priority_fee_per_gas)
    tx.refresh_from_db()
    assert tx.status == S.BROADCAST and tx.current_attempt == attempts[-1]
    assert ceiling_events(tx).count() == 1  # recorded once, not at every pass
    assert ceiling_events(tx).get().attempt == attempts[-1]

    # The stuck one is still the one the chain takes once a block comes
    mine(chain)
    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.MINED and tx.mined_attempt == attempts[-1]


def test_an_absolute_fee_ceiling_at_the_first_fees_means_no_bump_at_all(chain, network, hot, client):
    tx = send(network)
    sign_all()
    first = OutgoingAttempt.objects.get(transaction=tx)
    replace_at_once(network, max_fee_per_gas_wei=first.max_fee_per_gas)
    rpc(chain.rpc_url, "evm_setAutomine", [False])
    for _ in range(5):
        process(network, client)
        sign_all()
    tx.refresh_from_db()
    assert tx.status == S.BROADCAST and OutgoingAttempt.objects.filter(transaction=tx).count() == 1
    assert S.REPLACING not in statuses(tx) and ceiling_events(tx).count() == 1


def test_only_the_lowest_open_nonce_of_an_address_is_replaced(chain, network, hot, client):
    replace_at_once(network)
    first, second = send(network), send(network)
    sign_all()
    rpc(chain.rpc_url, "evm_setAutomine", [False])
    process(network, client)  # both broadcast, both pending
    process(network, client)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (S.REPLACING, S.BROADCAST)
    sign_all()
    assert OutgoingAttempt.objects.filter(transaction=first).count() == 2
    assert OutgoingAttempt.objects.filter(transaction=second).count() == 1  # waits behind nonce 0, not bumped
    assert S.REPLACING not in statuses(second)


def test_a_replacement_after_an_older_attempt_became_current_again_is_numbered_last_and_outbids_the_highest(
    chain, network, hot, client
):
    before = balance(chain, RECIPIENT)
    replace_at_once(network)
    tx = send(network, value=31337)
    sign_all()
    rpc(chain.rpc_url, "evm_setAutomine", [False])
    process(network, client)  # broadcast #1
    process(network, client)  # pending: to be replaced
    sign_all()
    process(network, client)  # broadcast #2: in the pool, #1 replaced
    first, second = OutgoingAttempt.objects.filter(transaction=tx).order_by("number")
    tx.refresh_from_db()
    assert tx.status == S.BROADCAST and tx.current_attempt == second
    # Given the row follows #1 again, as the receipt and reorg paths leave it (#1 mined, then its block gone)
    OutgoingTransaction.objects.filter(pk=tx.pk).update(status=S.REORGED, current_attempt=first,
                                                        mined_attempt=first)
    process(network, client)  # #1's bytes again: the node holds #2, higher -> "underpriced" -> replacing
    tx.refresh_from_db()
    assert tx.status == S.REPLACING

    assert sign_all() == 1
    third = OutgoingAttempt.objects.get(transaction=tx, number=3)
    assert third.max_fee_per_gas >= fee_bump(second.max_fee_per_gas)  # outbids #2, not only #1
    assert third.max_priority_fee_per_gas >= fee_bump(second.max_priority_fee_per_gas)
    process(network, client)
    mine(chain)
    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.MINED and tx.mined_attempt == third
    assert balance(chain, RECIPIENT) - before == 31337


def test_a_row_that_fails_to_sign_is_skipped_and_the_others_are_signed(chain, network, hot, client, monkeypatch,
                                                                       caplog):
    bad, good = send(network), send(network)
    real = boundary.signer()

    class FailsForOneNonce:
        def sign(self, transaction, *, key_ref):
            if transaction["nonce"] == bad.nonce:
                raise RuntimeError("the HSM refuses this one")
            return real.sign(transaction, key_ref=key_ref)

    monkeypatch.setattr(boundary, "_instance", FailsForOneNonce())
    assert wallet_tasks.sign_outgoing_transactions() == 1
    bad.refresh_from_db()
    good.refresh_from_db()
    assert bad.status == S.QUEUED and statuses(bad) == [S.QUEUED]
    assert not OutgoingAttempt.objects.filter(transaction=bad).exists()
    assert good.status == S.SIGNED
    assert f"signing outgoing transaction {bad.pk} failed" in caplog.text


def test_a_row_that_fails_in_the_sender_is_skipped_and_the_others_go_on(chain, network, hot, client, caplog):
    bad, good = send(network), send(network)
    sign_all()
    # Given a row the sender cannot work on (signed, yet no attempt to send)
    OutgoingTransaction.objects.filter(pk=bad.pk).update(current_attempt=None)
    summary = process(network, client)
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.status == S.BROADCAST and bad.status == S.SIGNED and statuses(bad) == [S.QUEUED, S.SIGNED]
    assert summary.broadcast == 1 and [e for e in summary.errors if e.startswith(f"{bad.pk}:")]
    assert f"outgoing transaction {bad.pk} failed" in caplog.text


def test_a_queued_transaction_is_cancelled_by_a_zero_send_that_still_uses_its_nonce(chain, network, hot, client):
    before = balance(chain, RECIPIENT)
    cancelled, kept = send(network, value=1111), send(network, value=2222)
    services.outgoing_transaction_cancel(tx=cancelled)
    cancelled.refresh_from_db()
    assert cancelled.status == S.REPLACING and cancelled.cancel_requested
    assert sign_all() == 2
    attempt = OutgoingAttempt.objects.get(transaction=cancelled)
    assert (attempt.number, attempt.kind) == (1, "cancel")
    process(network, client)
    process(network, client)
    mine(chain, 3)
    process(network, client)
    cancelled.refresh_from_db()
    kept.refresh_from_db()
    assert (cancelled.status, kept.status) == (S.CANCELLED, S.FINAL)
    assert statuses(cancelled) == [S.QUEUED, S.REPLACING, S.SIGNED, S.BROADCAST, S.MINED, S.CANCELLED]
    assert balance(chain, RECIPIENT) - before == 2222
    assert int(rpc(chain.rpc_url, "eth_getTransactionCount", [hot.address, "latest"]), 16) == 2  # no gap
    onchain = rpc(chain.rpc_url, "eth_getTransactionByHash", [attempt.tx_hash])
    assert onchain["to"] == hot.address and int(onchain["value"], 16) == 0


@pytest.mark.parametrize("status", [S.MINED, S.FINAL])
def test_a_mined_or_final_transaction_cannot_be_cancelled_and_nothing_changes(chain, network, hot, client, status):
    tx = send(network)
    sign_all()
    process(network, client)
    process(network, client)
    if status == S.FINAL:
        mine(chain, 3)
        process(network, client)
    tx.refresh_from_db()
    assert tx.status == status
    events = statuses(tx)
    with pytest.raises(services.OutgoingTransitionError):
        services.outgoing_transaction_cancel(tx=tx)
    tx.refresh_from_db()
    assert tx.status == status and not tx.cancel_requested and statuses(tx) == events
