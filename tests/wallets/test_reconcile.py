"""Reconciliation against a real anvil (the session's chain): on-chain balances of our deposit addresses at the
reconciliation block against the recorded transfers, discrepancies recorded once, resolved by staff in the admin.

Every test allocates fresh deposit addresses (a new random master seed per test database), so the balances other
tests moved on the shared chain do not matter. anvil's `finalized` tag is head-2.
"""
import json
import logging
import time
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import override_settings
from eth_utils import keccak

from gateway.celery import app as celery_app
from gateway.errors import DomainError
from tests.chain import anvil_chain, register_devnet_for_tests  # noqa: F401 (fixture)
from tests.faultproxy import FaultProxy
from tests.otp import login_verified
from wallets import tasks
from wallets.chain import scanner
from wallets.chain.rpc import RpcClient
from wallets.chain.reconcile import network_reconcile, outgoing_base_units, reconcile_block_number
from wallets.chain.scanner import ScanSummary, log_ranges_forget, scan_step
from wallets.chain.services import balance_discrepancy_resolve
from wallets.devchain import erc20_balance_of, rpc
from wallets.models import (BalanceDiscrepancy, ChainCursor, OutgoingTransaction, OutgoingTransfer, SendingAddress,
                            Token, Transfer)
from wallets.services import deposit_address_allocate

TOKEN_BALANCES_SLOT = 3  # TestToken: name, symbol, totalSupply, then `mapping(address => uint256) balanceOf`

# A contract that forwards msg.value to the address in its calldata with CALL (an "internal transaction"), and
# reverts if that call fails. Runtime (24 bytes):
#   PUSH1 0 PUSH1 0 PUSH1 0 PUSH1 0 CALLVALUE PUSH1 0 CALLDATALOAD GAS CALL ISZERO PUSH1 0x13 JUMPI STOP
#   JUMPDEST PUSH1 0 DUP1 REVERT
FORWARDER_RUNTIME = "6000600060006000346000355af115601357005b600080fd"
# Init code: CODECOPY the runtime (24 bytes at offset 12) to memory and RETURN it.
FORWARDER_INIT = "0x6018600c60003960186000f3" + FORWARDER_RUNTIME


# --- Fixtures and helpers ------------------------------------------------------------------------------------------


@pytest.fixture
def devnet(anvil_chain, db, monkeypatch):
    log_ranges_forget()
    monkeypatch.setattr(celery_app, "send_task", lambda *a, **kw: None)
    with override_settings(GATEWAY_DEVCHAIN_RPC_URL=anvil_chain.rpc_url):
        yield register_devnet_for_tests(anvil_chain)
    log_ranges_forget()


@pytest.fixture
def client(anvil_chain):
    return RpcClient([anvil_chain.rpc_url], name="devnet-test", retry_budget=1.0)


@pytest.fixture
def addresses(devnet, merchant, wallet):
    return [deposit_address_allocate(merchant=merchant) for _ in range(3)]


def send(chain, tx: dict) -> dict:
    tx_hash = rpc(chain.rpc_url, "eth_sendTransaction", [tx])
    deadline = time.monotonic() + 10
    while (receipt := rpc(chain.rpc_url, "eth_getTransactionReceipt", [tx_hash])) is None:
        assert time.monotonic() < deadline, f"{tx_hash} not mined"
        time.sleep(0.02)
    assert receipt["status"] == "0x1", receipt
    return receipt


def send_erc20(chain, *, token: str, to: str, amount: int, sender: int = 1) -> dict:
    data = "0xa9059cbb" + to[2:].rjust(64, "0") + hex(amount)[2:].rjust(64, "0")
    return send(chain, {"from": chain.accounts[sender], "to": chain.tokens[token], "data": data})


def scan(network, client) -> None:
    for _ in range(100):
        step = scan_step(network=network, client=client)
        assert not step.back_off, step
        if step.caught_up:
            return
    raise AssertionError("scanner not caught up")


def settle(chain, network, client) -> None:
    """Mine past finality (anvil: head-2), then scan: every transfer sent so far is recorded and final."""
    rpc(chain.rpc_url, "anvil_mine", [hex(3)])
    scan(network, client)


def deploy_forwarder(chain) -> str:
    receipt = send(chain, {"from": chain.accounts[0], "data": FORWARDER_INIT})
    return receipt["contractAddress"].lower()


def forward_native(chain, *, forwarder: str, to: str, value: int) -> dict:
    """Native coin to `to` by an internal transaction: the transaction goes to the forwarder, whose CALL pays `to`."""
    return send(chain, {"from": chain.accounts[4], "to": forwarder, "value": hex(value),
                        "data": "0x" + to[2:].rjust(64, "0")})


def token_balance_set(chain, *, token: str, owner: str, amount: int) -> None:
    """Write the token's balanceOf[owner] storage slot: funds leaving the address without any Transfer log."""
    slot = keccak(bytes.fromhex(owner[2:].rjust(64, "0")) + TOKEN_BALANCES_SLOT.to_bytes(32, "big"))
    rpc(chain.rpc_url, "anvil_setStorageAt", [chain.tokens[token], "0x" + slot.hex(), "0x" + f"{amount:064x}"])
    rpc(chain.rpc_url, "anvil_mine", [hex(1)])
    assert erc20_balance_of(chain.rpc_url, chain.tokens[token], owner) == amount


def facts() -> list[tuple]:
    return sorted(
        (d.deposit_address.address, d.token.currency if d.token_id else None, d.onchain_base_units,
         d.recorded_base_units, d.difference_base_units)
        for d in BalanceDiscrepancy.objects.select_related("deposit_address", "token")
    )


# --- Reconciliation ------------------------------------------------------------------------------------------------


def test_recorded_token_transfers_and_transfers_in_flight_give_no_discrepancy(anvil_chain, devnet, client, addresses):
    # Given a token transfer recorded and final, and a second one mined but not final yet
    scan(devnet, client)
    first, second = 12_345_678_901_234_567_890, 7 * 10**18 + 1
    send_erc20(anvil_chain, token="usdt", to=addresses[0].address, amount=first)
    settle(anvil_chain, devnet, client)
    send_erc20(anvil_chain, token="usdt", to=addresses[0].address, amount=second)
    scan(devnet, client)
    assert Transfer.objects.filter(deposit_address=addresses[0], finalized_at__isnull=False).count() == 1
    assert Transfer.objects.filter(deposit_address=addresses[0], finalized_at__isnull=True).count() == 1

    # When the addresses are reconciled
    summary = network_reconcile(network=devnet, client=client)

    # Then every balance (native, USDT, USDC of the three recent addresses) matches at the final block, where the
    # second transfer is not yet: nothing is recorded
    cursor = ChainCursor.objects.get(network=devnet)
    assert summary.status == "reconciled", summary
    assert summary.block_number == reconcile_block_number(network=devnet) == min(cursor.block_number,
                                                                                  cursor.finalized_number)
    assert (summary.addresses, summary.balances, summary.skipped_pending) == (3, 9, 0)
    assert (summary.differences, summary.recorded) == (0, 0)
    assert not BalanceDiscrepancy.objects.exists()


def test_native_coin_from_an_internal_transaction_is_recorded_once(anvil_chain, devnet, client, addresses):
    # Given native coin sent to our address by a contract's CALL (a block scan, even of native coin, cannot see it)
    devnet.scan_native = True
    devnet.save(update_fields=["scan_native"])
    scan(devnet, client)
    forwarder = deploy_forwarder(anvil_chain)
    value = 10**17 + 3
    forward_native(anvil_chain, forwarder=forwarder, to=addresses[1].address, value=value)
    settle(anvil_chain, devnet, client)
    assert not Transfer.objects.filter(deposit_address=addresses[1]).exists()
    assert int(rpc(anvil_chain.rpc_url, "eth_getBalance", [addresses[1].address, "latest"]), 16) == value

    # When reconciliation runs twice
    first = network_reconcile(network=devnet, client=client)
    second = network_reconcile(network=devnet, client=client)

    # Then the difference is recorded once, with its exact amounts, at the reconciliation block
    assert (first.differences, first.recorded) == (1, 1)
    assert (second.differences, second.recorded) == (1, 0)
    assert facts() == [(addresses[1].address, None, value, 0, value)]
    discrepancy = BalanceDiscrepancy.objects.get()
    assert discrepancy.block_number == first.block_number
    assert (discrepancy.network, discrepancy.token, discrepancy.resolved_at) == (devnet, None, None)

    # And once resolved, the same amounts are not recorded again; new coin makes a new fact
    balance_discrepancy_resolve(discrepancy=discrepancy, user=None, note="customer paid from a contract wallet")
    assert network_reconcile(network=devnet, client=client).recorded == 0
    forward_native(anvil_chain, forwarder=forwarder, to=addresses[1].address, value=5)
    settle(anvil_chain, devnet, client)
    assert network_reconcile(network=devnet, client=client).recorded == 1
    assert facts() == [(addresses[1].address, None, value, 0, value),
                       (addresses[1].address, None, value + 5, 0, value + 5)]


def test_tokens_missing_from_an_address_give_a_negative_difference(anvil_chain, devnet, client, addresses):
    # Given USDC received and recorded, then 2.5 USDC gone from the address without any Transfer log
    scan(devnet, client)
    received, gone = 40 * 10**18 + 7, 25 * 10**17
    send_erc20(anvil_chain, token="usdc", to=addresses[2].address, amount=received)
    settle(anvil_chain, devnet, client)
    token_balance_set(anvil_chain, token="usdc", owner=addresses[2].address, amount=received - gone)
    settle(anvil_chain, devnet, client)

    # When only that address is reconciled
    summary = network_reconcile(network=devnet, client=client, addresses=[addresses[2]])

    # Then the missing amount is recorded, negative, against what was recorded
    assert (summary.addresses, summary.balances, summary.recorded) == (1, 3, 1)
    assert facts() == [(addresses[2].address, "usdc", received - gone, received, -gone)]
    assert BalanceDiscrepancy.objects.get().token == Token.objects.get(network=devnet, currency="usdc")


def test_older_addresses_are_checked_only_once_they_received_a_transfer(anvil_chain, devnet, client, addresses):
    # Given three addresses issued long ago, one of which received a transfer, and a native balance on another
    scan(devnet, client)
    send_erc20(anvil_chain, token="usdt", to=addresses[0].address, amount=10**18)
    forward_native(anvil_chain, forwarder=deploy_forwarder(anvil_chain), to=addresses[1].address, value=1)
    settle(anvil_chain, devnet, client)
    type(addresses[0]).objects.filter(id__in=[a.id for a in addresses]).update(created="2020-01-01T00:00:00Z")

    # When reconciled with the default choice of addresses
    summary = network_reconcile(network=devnet, client=client, batch=2)

    # Then only the address with a transfer is read (the old address's native coin is not looked at)
    assert (summary.addresses, summary.balances, summary.recorded) == (1, 3, 0)


def test_an_unavailable_node_records_nothing_and_says_so(anvil_chain, devnet, client, addresses):
    scan(devnet, client)
    forward_native(anvil_chain, forwarder=deploy_forwarder(anvil_chain), to=addresses[0].address, value=9)
    settle(anvil_chain, devnet, client)
    with FaultProxy(anvil_chain.rpc_url, mode="http_503") as proxy:
        failing = RpcClient([proxy.url], name="failing", retry_budget=0.2, max_attempts=2)
        summary = network_reconcile(network=devnet, client=failing)
    assert summary.status == "unavailable" and summary.error
    assert not BalanceDiscrepancy.objects.exists()
    # The next run (a healthy node) records it
    assert network_reconcile(network=devnet, client=client).recorded == 1


def test_nothing_to_reconcile_before_the_first_final_block(devnet, client, addresses):
    summary = network_reconcile(network=devnet, client=client)
    assert (summary.status, summary.block_number, summary.addresses) == ("no_final_block", None, 0)


def test_the_command_and_the_beat_task(anvil_chain, devnet, client, addresses, caplog):
    scan(devnet, client)
    forward_native(anvil_chain, forwarder=deploy_forwarder(anvil_chain), to=addresses[0].address, value=11)
    settle(anvil_chain, devnet, client)

    out = StringIO()
    call_command("reconcile", "--chain", "devnet", "--json", stdout=out)
    printed = json.loads(out.getvalue())
    assert printed["networks"]["devnet"]["recorded"] == 1
    assert printed["networks"]["devnet"]["addresses"] == 3
    assert printed["open_discrepancies"] == 1

    out = StringIO()
    call_command("reconcile", "--address", addresses[0].address.upper().replace("0X", "0x"), stdout=out)
    assert "devnet: reconciled" in out.getvalue() and "1 differences (0 new)" in out.getvalue()

    with caplog.at_level(logging.INFO, logger="wallets.tasks"):
        summaries = tasks.reconcile_balances.apply().get()
    assert summaries["devnet"]["differences"] == 1 and summaries["devnet"]["recorded"] == 0
    assert "reconcile devnet: reconciled" in caplog.text
    assert BalanceDiscrepancy.objects.count() == 1


def test_scan_chains_logs_a_lagging_network_now_and_then(caplog):
    tasks._lag_logged.clear()
    with caplog.at_level(logging.INFO, logger="wallets.tasks"):
        tasks._lag_log(ScanSummary(network="lagnet", cursor=100, head=100 + tasks.LAG_LOG_BLOCKS + 1, finalized=90))
        tasks._lag_log(ScanSummary(network="lagnet", cursor=101, head=100 + tasks.LAG_LOG_BLOCKS + 2, finalized=91))
        tasks._lag_log(ScanSummary(network="fastnet", cursor=100, head=101, finalized=99))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"scan lagnet: lag {tasks.LAG_LOG_BLOCKS + 1} blocks (cursor 100, head "
                     f"{100 + tasks.LAG_LOG_BLOCKS + 1}, final 90)"]
    tasks._lag_logged.clear()


# --- Resolution by staff --------------------------------------------------------------------------------------------


@pytest.fixture
def discrepancy(devnet, addresses):
    return BalanceDiscrepancy.objects.create(
        network=devnet, deposit_address=addresses[0], token=None, block_number=10, onchain_base_units=5,
        recorded_base_units=0, difference_base_units=5,
    )


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")


def test_the_service_resolves_once_and_refuses_again(discrepancy, staff):
    balance_discrepancy_resolve(discrepancy=discrepancy, user=staff, note="  refunded  ")
    discrepancy.refresh_from_db()
    assert discrepancy.resolved_at is not None
    assert (discrepancy.resolved_by, discrepancy.note) == (staff, "refunded")
    resolved_at = discrepancy.resolved_at

    with pytest.raises(DomainError) as refused:
        balance_discrepancy_resolve(discrepancy=discrepancy, user=None, note="again")
    assert refused.value.code == "balance_discrepancy_resolved"
    discrepancy.refresh_from_db()
    assert (discrepancy.resolved_at, discrepancy.resolved_by, discrepancy.note) == (resolved_at, staff, "refunded")


def test_staff_mark_discrepancies_resolved_in_the_admin(discrepancy, staff):
    from django.test import Client

    browser = Client()
    login_verified(browser, staff)
    url = "/admin/wallets/balancediscrepancy/"
    listing = browser.get(url + "?resolved_at__isnull=True")
    assert listing.status_code == 200 and b"Mark resolved" in listing.content
    assert browser.get(f"{url}{discrepancy.pk}/change/").status_code == 200

    # The action first asks for a note, without changing anything
    asked = browser.post(url, {"action": "mark_resolved", "_selected_action": [discrepancy.pk]})
    assert asked.status_code == 200 and b'name="note"' in asked.content
    discrepancy.refresh_from_db()
    assert discrepancy.resolved_at is None

    # Then resolves through the service
    done = browser.post(url, {"action": "mark_resolved", "_selected_action": [discrepancy.pk], "apply": "1",
                              "note": "swept by hand"})
    assert done.status_code == 302
    discrepancy.refresh_from_db()
    assert discrepancy.resolved_at is not None
    assert (discrepancy.resolved_by, discrepancy.note) == (staff, "swept by hand")

    # A second time is refused with a message, and changes nothing
    again = browser.post(url, {"action": "mark_resolved", "_selected_action": [discrepancy.pk], "apply": "1",
                               "note": "other"}, follow=True)
    assert b"already resolved" in again.content
    discrepancy.refresh_from_db()
    assert discrepancy.note == "swept by hand"


def test_staff_who_may_only_view_do_not_get_the_action(discrepancy):
    from django.test import Client

    viewer = get_user_model().objects.create_user("viewer", "viewer@example.com", "pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_balancediscrepancy"))
    browser = Client()
    login_verified(browser, viewer)
    url = "/admin/wallets/balancediscrepancy/"
    assert browser.get(url).status_code == 200
    browser.post(url, {"action": "mark_resolved", "_selected_action": [discrepancy.pk], "apply": "1", "note": "x"})
    discrepancy.refresh_from_db()
    assert discrepancy.resolved_at is None


def test_the_admin_shows_the_chain_lag(anvil_chain, devnet, client, staff):
    from django.test import Client

    scan(devnet, client)
    ChainCursor.objects.filter(network=devnet).update(head_number=ChainCursor.objects.get(network=devnet).block_number
                                                      + 42)
    browser = Client()
    login_verified(browser, staff)
    networks = browser.get("/admin/wallets/network/?is_active__exact=1")
    assert networks.status_code == 200 and b"Lag (blocks)" in networks.content
    assert b'<td class="field-chain_lag">42</td>' in networks.content
    cursors = browser.get("/admin/wallets/chaincursor/")
    assert cursors.status_code == 200 and b'<td class="field-chain_lag">42</td>' in cursors.content
    assert b"field-final_lag" in cursors.content
    cursor_id = ChainCursor.objects.get(network=devnet).pk
    detail = browser.get(f"/admin/wallets/chaincursor/{cursor_id}/change/")
    assert detail.status_code == 200 and b"Lag (blocks)" in detail.content


def test_gas_paid_by_a_reverted_or_cancelled_transaction_counts_its_tokens_do_not(devnet, addresses):
    # given an address's own transactions: one reverted (mined, failed), one whose nonce a cancellation used
    # (cancelled, with a receipt), one mined not final, and one not mined; each paid gas, the first also meant tokens
    address = addresses[0]
    usdt = Token.objects.get(network=devnet, currency="usdt")
    sender = SendingAddress.objects.create(network=devnet, address=address.address, key_ref="m/d", next_nonce=4,
                                           purpose=SendingAddress.Purpose.DEPOSIT)
    Status = OutgoingTransaction.Status

    def tx(nonce, status, receipt_status, block_number):
        row = OutgoingTransaction.objects.create(
            network=devnet, sending_address=sender, from_address=address.address, nonce=nonce,
            to_address="0x" + "1" * 40, gas_limit=100_000, tx_type=2, status=status, purpose="sweep",
            receipt_status=receipt_status, block_number=block_number)
        OutgoingTransfer.objects.create(transaction=row, kind=OutgoingTransfer.Kind.GAS, deposit_address=address,
                                        token=None, to_address=row.to_address, amount_base_units=10 + nonce)
        return row

    failed = tx(0, Status.FAILED, 0, 5)
    OutgoingTransfer.objects.create(transaction=failed, kind=OutgoingTransfer.Kind.SWEEP, deposit_address=address,
                                    token=usdt, to_address=failed.to_address, amount_base_units=1000)
    tx(1, Status.CANCELLED, 1, 6)
    tx(2, Status.MINED, 1, 7)
    tx(3, Status.BROADCAST, None, None)

    # when reconciliation reads what the gateway moved out, then the gas of every mined one counts, no tokens
    assert outgoing_base_units(network=devnet, deposit_address_ids=[address.id], up_to_block=10) == {
        (address.id, None): 10 + 11 + 12}
    assert outgoing_base_units(network=devnet, deposit_address_ids=[address.id], up_to_block=5) == {
        (address.id, None): 10}
