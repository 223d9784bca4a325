"""The transaction manager on anvil: create -> sign (stored) -> broadcast -> mined -> final, and what goes wrong on
chains: stuck below the base fee, dropped, reorged away, reverted. The signing step and the sender run in this
process here; tests/wallets/test_signer.py runs them in real Celery workers, test_kill.py kills them."""
import threading

import pytest
from django.db import connection, transaction

from tests.wallets.outgoing.conftest import ETH, balance, mine, sign_all
from wallets.devchain import rpc
from wallets.outgoing import services
from wallets.signer import step as signer_step
from wallets.outgoing.fees import fee_bump
from wallets.outgoing.models import OutgoingAttempt, OutgoingTransaction, OutgoingTransactionEvent, SendingAddress

S = OutgoingTransaction.Status
RECIPIENT = "0x" + "5e" * 20


def send(network, *, value=ETH // 1000, to=RECIPIENT, **kwargs):
    return services.outgoing_transaction_create(network=network, to_address=to, value_base_units=value,
                                                gas_limit=kwargs.pop("gas_limit", 21_000), purpose="test", **kwargs)


def statuses(tx) -> list[str]:
    return list(OutgoingTransactionEvent.objects.filter(transaction=tx).order_by("id").values_list("to_status",
                                                                                                 flat=True))


def process(network, client):
    return services.outgoing_transactions_process(network=network, client=client)


def test_a_native_transfer_is_stored_signed_before_it_is_broadcast_then_followed_to_finality(chain, network, hot,
                                                                                              client):
    before = balance(chain, RECIPIENT)
    tx = send(network, value=12345)
    assert (tx.status, tx.nonce, tx.current_attempt) == (S.QUEUED, 0, None)

    # The sender never broadcasts a row without stored bytes
    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.QUEUED and not OutgoingAttempt.objects.exists()
    assert int(rpc(chain.rpc_url, "eth_getTransactionCount", [hot.address, "pending"]), 16) == 0

    assert sign_all() == 1
    tx.refresh_from_db()
    attempt = tx.current_attempt
    assert tx.status == S.SIGNED and attempt.number == 1 and len(bytes(attempt.raw_transaction)) > 100
    assert rpc(chain.rpc_url, "eth_getTransactionByHash", [attempt.tx_hash]) is None  # signed, not sent

    process(network, client)  # broadcast (automine mines it at once)
    process(network, client)  # the receipt
    tx.refresh_from_db()
    assert tx.status == S.MINED and tx.mined_attempt == attempt and tx.receipt_status == 1
    assert tx.gas_used == 21_000 and tx.effective_gas_price > 0
    onchain = rpc(chain.rpc_url, "eth_getTransactionByHash", [attempt.tx_hash])
    assert onchain["from"] == hot.address and int(onchain["nonce"], 16) == 0 and int(onchain["type"], 16) == 2

    mine(chain, 3)
    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.FINAL
    assert statuses(tx) == [S.QUEUED, S.SIGNED, S.BROADCAST, S.MINED, S.FINAL]
    assert balance(chain, RECIPIENT) - before == 12345
    process(network, client)  # nothing left to do, nothing changes
    assert statuses(tx)[-1] == S.FINAL and OutgoingTransactionEvent.objects.filter(transaction=tx).count() == 5


def test_a_rolled_back_creation_gives_its_nonce_back(network, hot):
    with pytest.raises(RuntimeError), transaction.atomic():
        send(network)
        raise RuntimeError("the caller's transaction fails")
    assert not OutgoingTransaction.objects.exists() and not OutgoingTransactionEvent.objects.exists()
    assert SendingAddress.objects.get(pk=hot.pk).next_nonce == 0
    assert send(network).nonce == 0


def test_the_same_cause_never_gets_two_transactions(network, hot):
    send(network, source_reference="po_1")
    with pytest.raises(services.DomainError) as refused:
        send(network, source_reference="po_1")
    assert refused.value.param == "source_reference"
    assert OutgoingTransaction.objects.count() == 1 and SendingAddress.objects.get(pk=hot.pk).next_nonce == 1


def test_a_signer_that_fails_stores_nothing_and_broadcasts_nothing(chain, network, hot, client, monkeypatch):
    tx = send(network)
    from wallets import signer as boundary

    real = boundary.signer()

    class Crashing:
        def sign(self, transaction, *, key_ref):
            real.sign(transaction, key_ref=key_ref)
            raise RuntimeError("killed after signing, before storing")

    monkeypatch.setattr(boundary, "_instance", Crashing())
    with pytest.raises(RuntimeError):
        signer_step.outgoing_transaction_sign_next()
    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.QUEUED and not OutgoingAttempt.objects.exists() and statuses(tx) == [S.QUEUED]
    assert int(rpc(chain.rpc_url, "eth_getTransactionCount", [hot.address, "pending"]), 16) == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_creations_get_consecutive_nonces_each_once(network, hot):
    errors = []

    def worker():
        try:
            for _ in range(6):
                send(network)
        except Exception as exc:  # pragma: no cover - shown by the assertion
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    nonces = sorted(OutgoingTransaction.objects.values_list("nonce", flat=True))
    assert nonces == list(range(36))
    assert SendingAddress.objects.get(pk=hot.pk).next_nonce == 36


@pytest.mark.parametrize("fee_model", ["eip1559", "legacy"])
def test_a_transaction_stuck_below_the_base_fee_is_replaced_with_a_higher_fee_and_mined(chain, network, hot, client,
                                                                                       fee_model):
    network.fee_model = fee_model
    network.tx_replace_seconds = 0  # replace at the first pass that finds it pending
    network.save(update_fields=["fee_model", "tx_replace_seconds"])
    before = balance(chain, RECIPIENT)
    tx = send(network, value=777)
    sign_all()
    first = OutgoingAttempt.objects.get(transaction=tx)
    rpc(chain.rpc_url, "evm_setAutomine", [False])
    process(network, client)  # broadcast: in the pool
    # Given the base fee jumps to 3x what the first attempt offers before a block includes it (within the default
    # fee ceiling, 4x the first attempt's fees: the market's ask, higher, is cut to it)
    offered = first.gas_price or first.max_fee_per_gas
    rpc(chain.rpc_url, "anvil_setNextBlockBaseFeePerGas", [hex(offered * 3)])
    mine(chain)
    rpc(chain.rpc_url, "evm_setAutomine", [True])
    tx.refresh_from_db()
    assert tx.status == S.BROADCAST
    assert rpc(chain.rpc_url, "eth_getTransactionReceipt", [first.tx_hash]) is None  # stuck below the base fee

    process(network, client)  # not mined after the chain's timeout: to be replaced
    tx.refresh_from_db()
    assert tx.status == S.REPLACING
    sign_all()
    second = OutgoingAttempt.objects.get(transaction=tx, number=2)
    assert second.kind == "bump" and second.tx_hash != first.tx_hash
    if fee_model == "legacy":
        assert second.gas_price >= fee_bump(first.gas_price) and second.max_fee_per_gas is None
    else:
        assert second.max_fee_per_gas >= fee_bump(first.max_fee_per_gas)
        assert second.max_priority_fee_per_gas >= fee_bump(first.max_priority_fee_per_gas)
    process(network, client)  # broadcast the replacement (the node accepts it: same nonce, higher fees)
    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.MINED and tx.mined_attempt == second
    mine(chain, 3)
    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.FINAL and balance(chain, RECIPIENT) - before == 777
    # anvil evicts a transaction below the base fee from its pool (geth keeps it): then the manager sees it dropped,
    # and the node refuses the stored bytes again; either way it is replaced
    assert statuses(tx) in (
        [S.QUEUED, S.SIGNED, S.BROADCAST, S.REPLACING, S.SIGNED, S.BROADCAST, S.MINED, S.FINAL],
        [S.QUEUED, S.SIGNED, S.BROADCAST, S.DROPPED, S.REPLACING, S.SIGNED, S.BROADCAST, S.MINED, S.FINAL],
    ), statuses(tx)
    assert OutgoingAttempt.objects.filter(transaction=tx).count() == 2  # the replaced one is kept


def test_a_dropped_transaction_is_broadcast_again_from_its_stored_bytes(chain, network, hot, client):
    before = balance(chain, RECIPIENT)
    tx = send(network, value=4242)
    sign_all()
    rpc(chain.rpc_url, "evm_setAutomine", [False])
    process(network, client)
    attempt = OutgoingAttempt.objects.get(transaction=tx)
    assert rpc(chain.rpc_url, "eth_getTransactionByHash", [attempt.tx_hash]) is not None
    # Given the node forgets it
    rpc(chain.rpc_url, "anvil_dropTransaction", [attempt.tx_hash])
    assert rpc(chain.rpc_url, "eth_getTransactionByHash", [attempt.tx_hash]) is None

    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.BROADCAST and statuses(tx)[-2:] == [S.DROPPED, S.BROADCAST]
    assert rpc(chain.rpc_url, "eth_getTransactionByHash", [attempt.tx_hash]) is not None  # the same bytes again
    mine(chain)
    process(network, client)
    mine(chain, 3)
    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.FINAL and tx.mined_attempt == attempt
    assert OutgoingAttempt.objects.filter(transaction=tx).count() == 1
    assert balance(chain, RECIPIENT) - before == 4242


def test_a_transaction_reorged_away_is_sent_again_and_counted_once(chain, network, hot, client):
    before = balance(chain, RECIPIENT)
    tx = send(network, value=9001)
    sign_all()
    process(network, client)
    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.MINED
    old_block = (tx.block_number, tx.block_hash)
    # Given its block is replaced by an empty one
    rpc(chain.rpc_url, "anvil_reorg", [1, []])
    rpc(chain.rpc_url, "evm_setAutomine", [False])
    rpc(chain.rpc_url, "anvil_dropTransaction", [tx.mined_attempt.tx_hash])  # the node does not put it back itself
    assert rpc(chain.rpc_url, "eth_getTransactionReceipt", [tx.mined_attempt.tx_hash]) is None

    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.BROADCAST and statuses(tx)[-2:] == [S.REORGED, S.BROADCAST]
    mine(chain)
    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.MINED and (tx.block_number, tx.block_hash) != old_block
    mine(chain, 3)
    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.FINAL
    assert statuses(tx).count(S.FINAL) == 1 and OutgoingAttempt.objects.filter(transaction=tx).count() == 1
    assert balance(chain, RECIPIENT) - before == 9001


def test_a_reverted_transaction_is_recorded_failed_with_its_gas_and_moves_nothing(chain, network, hot, client):
    token = chain.tokens["usdt"]
    data = bytes.fromhex("a9059cbb" + RECIPIENT[2:].rjust(64, "0") + hex(10**30)[2:].rjust(64, "0"))
    from wallets.devchain import erc20_balance_of

    before = erc20_balance_of(chain.rpc_url, token, RECIPIENT)
    eth_before = balance(chain, hot.address)
    tx = send(network, to=token, value=0, data=data, gas_limit=100_000)  # the hot wallet holds no USDT: reverts
    sign_all()
    process(network, client)
    process(network, client)
    mine(chain, 3)
    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.FAILED and tx.receipt_status == 0
    assert 21_000 < tx.gas_used <= 100_000 and tx.effective_gas_price > 0
    assert eth_before - balance(chain, hot.address) == tx.gas_used * tx.effective_gas_price  # the gas, paid
    assert erc20_balance_of(chain.rpc_url, token, RECIPIENT) == before
    assert statuses(tx) == [S.QUEUED, S.SIGNED, S.BROADCAST, S.MINED, S.FAILED]


def test_a_pending_transaction_can_be_cancelled_with_a_zero_send_to_itself(chain, network, hot, client):
    before = balance(chain, RECIPIENT)
    tx = send(network, value=5555)
    sign_all()
    rpc(chain.rpc_url, "evm_setAutomine", [False])
    process(network, client)
    services.outgoing_transaction_cancel(tx=tx)
    sign_all()
    cancel = OutgoingAttempt.objects.get(transaction=tx, number=2)
    assert cancel.kind == "cancel"
    process(network, client)
    mine(chain)
    process(network, client)
    mine(chain, 3)
    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.CANCELLED and tx.mined_attempt == cancel
    assert balance(chain, RECIPIENT) == before
    onchain = rpc(chain.rpc_url, "eth_getTransactionByHash", [cancel.tx_hash])
    assert onchain["to"] == hot.address and int(onchain["value"], 16) == 0


def test_a_transition_not_allowed_is_refused_and_changes_nothing(network, hot):
    tx = send(network)
    with pytest.raises(services.OutgoingTransitionError):
        services.outgoing_transaction_transition(tx=tx, to=S.FINAL)
    tx.refresh_from_db()
    assert tx.status == S.QUEUED and statuses(tx) == [S.QUEUED]


def test_hot_wallet_command_registers_once_and_shows_the_address(network, hot):
    import json
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("hot_wallet", "--network", network.code, "--json", stdout=out)
    shown = json.loads(out.getvalue())
    assert shown == {"network": "devnet", "purpose": "hot", "address": hot.address, "key_ref": hot.key_ref,
                     "next_nonce": 0}
    assert SendingAddress.objects.count() == 1


def test_staff_see_outgoing_transactions_in_admin(network, hot, admin_client):
    tx = send(network)
    sign_all()
    assert admin_client.get("/admin/wallets/outgoingtransaction/").status_code == 200
    page = admin_client.get(f"/admin/wallets/outgoingtransaction/{tx.pk}/change/")
    assert page.status_code == 200 and OutgoingAttempt.objects.get().tx_hash in page.content.decode()
    assert admin_client.get("/admin/wallets/sendingaddress/").status_code == 200


def test_a_transaction_mined_while_waiting_for_its_replacement_is_recorded_and_not_signed_again(chain, network, hot,
                                                                                                client):
    network.tx_replace_seconds = 0
    network.save(update_fields=["tx_replace_seconds"])
    tx = send(network)
    sign_all()
    rpc(chain.rpc_url, "evm_setAutomine", [False])
    process(network, client)  # broadcast
    process(network, client)  # pending: to be replaced
    tx.refresh_from_db()
    assert tx.status == S.REPLACING
    mine(chain)  # the original gets in before the signer runs
    process(network, client)
    tx.refresh_from_db()
    assert tx.status == S.MINED and tx.mined_attempt.number == 1
    assert sign_all() == 0 and OutgoingAttempt.objects.filter(transaction=tx).count() == 1
