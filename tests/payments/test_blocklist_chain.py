"""The blocklist on a real chain (anvil): a deposit from a blocked sender is held for review (not credited, not
posted, reported), then released by staff and credited once by the normal rules; the stablecoin issuers' blacklist
events naming one of our deposit addresses raise one alert each (scanned in the same eth_getLogs call)."""
import logging

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import transaction

from audit.models import AuditRecord
from payments import funding
from payments.corrections import held_deposit_keep, held_deposit_release
from payments.models import Charge, ChargeLedgerOutbox, Event, HeldDeposit, PaymentIntent, UnmatchedDeposit
from settlements.sweeps import sweep_balances
from tests.payments.conftest import create, get, mined, settle
from tests.payments.test_chain_payments import send_token
from tests.staff import staff_user
from wallets.blocklist import blocked_address_add
from wallets.chain.services import chain_cursor_rewind
from wallets.devchain import rpc
from wallets.models import DepositAddress, IssuerBlacklistAlert, Token

DUE = 1999 * 10**16  # 19.99 USDT (18 decimals): pays an intent of $19.99


def _facts(intent_id):
    return (Charge.objects.filter(payment_intent_id=intent_id).count(), ChargeLedgerOutbox.objects.count(),
            Event.objects.filter(object_id=intent_id).count(), UnmatchedDeposit.objects.count())


@pytest.fixture
def ops_email(db):
    return get_user_model().objects.create_user(username="oncall", email="oncall@ops.example", is_staff=True)


def test_a_blocked_senders_deposit_is_held_reported_then_released_and_credited_once(api, devnet, anvil_chain,
                                                                                      ops_email, caplog):
    sender = anvil_chain.accounts[6]
    blocked_address_add(address=sender, reason="SDN test entry", actor="command:test", source="ofac",
                        list_reference="SDN 1 ETH")
    settle(devnet, anvil_chain)
    intent = create(api)
    address = get(api, intent["id"])["next_action"]["crypto_display_details"]["deposit_addresses"]["bsc"]["address"]

    # when the blocked sender pays the intent in full, and the transfer becomes final
    with caplog.at_level(logging.WARNING, logger="payments.funding"):
        tx_hash = send_token(anvil_chain, token="usdt", to=address, amount=DUE, sender=6)
        settle(devnet, anvil_chain)
        settle(devnet, anvil_chain, mine_blocks=2)

    # then it is held: not credited (no Charge, no ledger fact, no event), not an unmatched deposit, not sweepable
    paid = get(api, intent["id"])
    assert paid["status"] == "requires_action" and paid["amount_received"] == 0
    hold = HeldDeposit.objects.get()
    assert (hold.status, hold.from_address, hold.payment_intent_id, hold.transfer.tx_hash) == (
        "held", sender, intent["id"], tx_hash)
    assert hold.blocked_reason == "ofac SDN 1 ETH: SDN test entry"
    assert _facts(intent["id"]) == (0, 0, 2, 0)  # created, requires_action: nothing else
    usdt = Token.objects.get(network=devnet, currency="usdt")
    assert sweep_balances(token=usdt) == {}
    # and reported: a log line, an email to staff (once, whatever the applications that follow)
    assert any(hold.id in r.getMessage() and "blocked" in r.getMessage() for r in caplog.records)
    assert [m.to for m in mail.outbox] == [["oncall@ops.example"]] and hold.id in mail.outbox[0].subject
    settle(devnet, anvil_chain, mine_blocks=1)
    assert HeldDeposit.objects.count() == 1 and len(mail.outbox) == 1

    # when security staff release it, with a reason
    security = staff_user("security")
    held_deposit_release(hold=hold, actor=security, reason="sender delisted, ticket 42")

    # then it funds the intent by the normal rules, once
    released = get(api, intent["id"])
    assert released["status"] == "succeeded" and released["amount_received"] == 1999
    charge = Charge.objects.get(payment_intent_id=intent["id"])
    assert charge.transfer_id == hold.transfer_id and ChargeLedgerOutbox.objects.filter(charge=charge).count() == 1
    record = AuditRecord.objects.get(action="held_deposit.release")
    assert (record.object_id, record.reason, record.actor_type) == (hold.id, "sender delisted, ticket 42", "staff")
    assert record.after["payment_intent"]["status"] == "succeeded"
    facts = _facts(intent["id"])
    held_deposit_release(hold=hold, actor=security, reason="again")  # twice: nothing more
    settle(devnet, anvil_chain, mine_blocks=1)
    with transaction.atomic():
        funding.address_apply(deposit_address_id=DepositAddress.objects.get(address=address).id)
    assert _facts(intent["id"]) == facts
    assert AuditRecord.objects.filter(action="held_deposit.release").count() == 1


def test_a_kept_deposit_stays_uncredited_and_a_sender_blocked_later_keeps_what_was_credited(api, devnet,
                                                                                              anvil_chain):
    settle(devnet, anvil_chain)
    first, second = create(api), create(api)
    addresses = [get(api, i["id"])["next_action"]["crypto_display_details"]["deposit_addresses"]["bsc"]["address"]
                 for i in (first, second)]
    send_token(anvil_chain, token="usdt", to=addresses[0], amount=DUE, sender=7)
    settle(devnet, anvil_chain, mine_blocks=2)
    assert get(api, first["id"])["status"] == "succeeded"

    # the sender is blocked afterwards: what was credited stays credited, the next payment is held
    blocked_address_add(address=anvil_chain.accounts[7], reason="case 9", actor="command:test")
    send_token(anvil_chain, token="usdt", to=addresses[1], amount=DUE, sender=7)
    settle(devnet, anvil_chain, mine_blocks=2)
    assert get(api, first["id"])["status"] == "succeeded"
    assert get(api, second["id"])["status"] == "requires_action"
    hold = HeldDeposit.objects.get()

    held_deposit_keep(hold=hold, actor=staff_user("security"), reason="frozen on request of the authorities")
    settle(devnet, anvil_chain, mine_blocks=1)
    assert HeldDeposit.objects.get().status == "kept" and get(api, second["id"])["status"] == "requires_action"
    assert not Charge.objects.filter(payment_intent_id=second["id"]).exists()
    assert AuditRecord.objects.filter(action="held_deposit.keep").count() == 1


def _call(chain, token: str, selector_text: str, address: str) -> str:
    from eth_utils import keccak

    data = "0x" + keccak(text=selector_text)[:4].hex() + address[2:].rjust(64, "0")
    tx_hash = rpc(chain.rpc_url, "eth_sendTransaction", [{"from": chain.accounts[0], "to": chain.tokens[token],
                                                           "data": data}])
    assert mined(chain.rpc_url, tx_hash)["status"] == "0x1"
    return tx_hash


def test_an_issuer_blacklisting_one_of_our_deposit_addresses_raises_one_alert(api, devnet, anvil_chain, ops_email):
    settle(devnet, anvil_chain)
    intent = create(api)
    address = get(api, intent["id"])["next_action"]["crypto_display_details"]["deposit_addresses"]["bsc"]["address"]
    start = rpc(anvil_chain.rpc_url, "eth_blockNumber", [])

    # when Tether (USDT: AddedBlackList, address in the data) and Circle (USDC: Blacklisted, indexed) freeze our
    # deposit address, and USDT freezes someone else's
    usdt_tx = _call(anvil_chain, "usdt", "addBlackList(address)", address)
    usdc_tx = _call(anvil_chain, "usdc", "blacklist(address)", address)
    _call(anvil_chain, "usdt", "addBlackList(address)", "0x" + "ab" * 20)
    settle(devnet, anvil_chain)

    # then one alert per event on our address, emailed to staff
    alerts = list(IssuerBlacklistAlert.objects.order_by("block_number", "log_index"))
    assert [(a.event, a.token.currency, a.address, a.kind, a.tx_hash) for a in alerts] == [
        ("AddedBlackList", "usdt", address, "deposit", usdt_tx), ("Blacklisted", "usdc", address, "deposit", usdc_tx)]
    assert alerts[0].deposit_address.address == address
    assert len(mail.outbox) == 2 and "AddedBlackList" in mail.outbox[0].subject

    # a rescan of those blocks raises nothing more
    chain_cursor_rewind(network=devnet, block_number=int(start, 16))
    settle(devnet, anvil_chain)
    assert IssuerBlacklistAlert.objects.count() == 2 and len(mail.outbox) == 2
    # the intent is untouched
    assert get(api, intent["id"])["status"] == "requires_action"
    assert PaymentIntent.objects.get(pk=intent["id"]).amount_received == 0
