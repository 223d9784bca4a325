"""End to end on a real chain: the API creates an intent, the test helper really sends the deposit on anvil, the
scanner records it, the payments side applies it, and the API shows the intent and its Charge (the fixtures and
helpers: tests/payments/conftest.py)."""
import pytest

from payments import funding
from payments.models import Event
from tests.payments.conftest import charges_of, create, event_types, get, mined, settle, simulate
from wallets.chain.scanner import scan_step
from wallets.devchain import rpc
from wallets.networks import clear_network_cache


def test_a_simulated_deposit_moves_the_intent_to_processing_then_succeeded_with_a_charge(api, devnet, anvil_chain):
    settle(devnet, anvil_chain)  # the cursor starts at the head
    intent = create(api)
    response = simulate(api, intent["id"])
    assert response.status_code == 200, response.json()
    tx_hash = response.json()["test_helper"]["transaction_hash"]

    settle(devnet, anvil_chain)  # in a block, not final yet (finalized = head - 2)
    seen = api.get(f"/v1/payment_intents/{intent['id']}").json()
    assert seen["status"] == "processing" and seen["amount_received"] == 0

    settle(devnet, anvil_chain, mine_blocks=2)
    paid = api.get(f"/v1/payment_intents/{intent['id']}").json()
    assert paid["status"] == "succeeded" and paid["amount_received"] == 1999
    charges = api.get("/v1/charges", {"payment_intent": intent["id"]}).json()["data"]
    assert len(charges) == 1 and paid["latest_charge"] == charges[0]["id"]
    crypto = charges[0]["payment_method_details"]["crypto"]
    assert crypto["transaction_hash"] == tx_hash and crypto["network"] == "bsc" and crypto["token_currency"] == "usdt"
    assert api.get(f"/v1/charges/{charges[0]['id']}").json()["id"] == charges[0]["id"]
    types = list(Event.objects.filter(object_id=intent["id"]).order_by("sequence").values_list("type", flat=True))
    assert types == ["payment_intent.created", "payment_intent.requires_action", "payment_intent.processing",
                     "payment_intent.succeeded"]
    assert Event.objects.filter(type="charge.succeeded", object_id=charges[0]["id"]).count() == 1

    # scanning and applying again changes nothing
    settle(devnet, anvil_chain, mine_blocks=1)
    assert api.get(f"/v1/payment_intents/{intent['id']}").json() == paid
    again = api.get("/v1/charges", {"payment_intent": intent["id"]}).json()["data"]
    assert [c["id"] for c in again] == [charges[0]["id"]]
    assert again[0]["confirmations"] == charges[0]["confirmations"] + 1


def test_two_partial_deposits_add_up(api, devnet, anvil_chain):
    settle(devnet, anvil_chain)
    intent = create(api, amount=1000)
    assert simulate(api, intent["id"], amount=4 * 10**18).status_code == 200  # 4.00 of 10.00 USDT
    settle(devnet, anvil_chain, mine_blocks=2)
    partial = api.get(f"/v1/payment_intents/{intent['id']}").json()
    assert partial["status"] == "requires_action" and partial["amount_received"] == 400
    assert simulate(api, intent["id"], amount=6 * 10**18).status_code == 200
    settle(devnet, anvil_chain, mine_blocks=2)
    paid = api.get(f"/v1/payment_intents/{intent['id']}").json()
    assert paid["status"] == "succeeded" and paid["amount_received"] == 1000
    charges = {c["amount"]: c["id"] for c in charges_of(api, intent["id"])}
    assert sorted(charges) == [400, 600]
    # every event written after the intent's creation, in order: each part credited (its Charge) before the intent
    # moves; the first part announces the shortfall, the second completes the payment (final at once: processing and
    # succeeded together)
    written = (Event.objects.exclude(type__in=["payment_intent.created", "payment_intent.requires_action"])
               .order_by("created").values_list("type", "object_id"))
    assert list(written) == [
        ("charge.succeeded", charges[400]), ("payment_intent.partially_funded", intent["id"]),
        ("charge.succeeded", charges[600]), ("payment_intent.processing", intent["id"]),
        ("payment_intent.succeeded", intent["id"]),
    ]


def test_the_test_helper_refuses_bad_input_and_live_keys(api, devnet, merchant, make_key):
    intent = create(api)
    bad = simulate(api, intent["id"], network="nowhere")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "network"
    bad = simulate(api, intent["id"], token_currency="dai")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "token_currency"
    bad = simulate(api, intent["id"], amount="-5")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "amount"
    bad = simulate(api, intent["id"], amount=str(10 * 19_990_000_000_000_000_000 + 1))  # the faucet is finite
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "amount"
    assert simulate(api, "pi_doesnotexist").status_code == 404
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(merchant, livemode=True)}")
    assert simulate(api, intent["id"]).status_code in (400, 404)


# --- Every way a customer pays, on the real chain ------------------------------------------------------------------

DUE_1000 = 10 * 10**18  # 10.00 USD in the test USDT (18 decimals)


def send_token(chain, *, token: str, to: str, amount: int, sender: int = 5) -> str:
    """A transfer straight on the chain from one of anvil's unlocked accounts (not through the test helper)."""
    data = "0xa9059cbb" + to[2:].rjust(64, "0") + hex(amount)[2:].rjust(64, "0")
    tx_hash = rpc(chain.rpc_url, "eth_sendTransaction", [{"from": chain.accounts[sender], "to": chain.tokens[token],
                                                           "data": data}])
    receipt = mined(chain.rpc_url, tx_hash)
    assert receipt["status"] == "0x1", receipt
    return tx_hash


def deposits(**filters):
    from payments.models import UnmatchedDeposit

    return list(UnmatchedDeposit.objects.filter(**filters).select_related("transfer").order_by("created"))


def test_a_short_payment_waits_partially_funded_with_its_charge(api, devnet, anvil_chain):
    settle(devnet, anvil_chain)
    intent = create(api, amount=1000)
    assert simulate(api, intent["id"], amount=4 * 10**18 + 7).status_code == 200  # 4.00 (and a dust) of 10.00

    settle(devnet, anvil_chain)  # seen, not final: still waiting, the shortfall is announced
    seen = get(api, intent["id"])
    assert seen["status"] == "requires_action" and seen["amount_received"] == 0
    assert seen["next_action"]["type"] == "crypto_display_details"  # the customer can still pay the rest
    assert event_types(intent["id"])[2:] == ["payment_intent.partially_funded"]

    settle(devnet, anvil_chain, mine_blocks=2)  # final: received, credited, still short
    short = get(api, intent["id"])
    assert short["status"] == "requires_action" and short["amount_received"] == 400
    charges = charges_of(api, intent["id"])
    assert [(c["amount"], c["amount_base_units"], c["paid"]) for c in charges] == [(400, str(4 * 10**18 + 7), True)]
    assert short["latest_charge"] == charges[0]["id"]
    assert event_types(intent["id"])[2:] == ["payment_intent.partially_funded"]  # announced once, not again
    assert event_types(charges[0]["id"]) == ["charge.succeeded"]


def test_a_short_payment_within_the_merchants_tolerance_succeeds(api, devnet, anvil_chain, merchant):
    merchant.underpayment_tolerance_bps = 100  # 1 %
    merchant.save(update_fields=["underpayment_tolerance_bps"])
    settle(devnet, anvil_chain)
    intent = create(api, amount=1000)
    assert simulate(api, intent["id"], amount=DUE_1000 * 99 // 100).status_code == 200  # 9.90 of 10.00

    settle(devnet, anvil_chain)
    assert get(api, intent["id"])["status"] == "processing"
    settle(devnet, anvil_chain, mine_blocks=2)
    paid = get(api, intent["id"])
    assert paid["status"] == "succeeded" and paid["amount_received"] == 990
    assert [c["amount"] for c in charges_of(api, intent["id"])] == [990]
    assert event_types(intent["id"])[2:] == ["payment_intent.processing", "payment_intent.succeeded"]

    # Just outside the tolerance: it waits for the rest
    short = create(api, amount=1000)
    assert simulate(api, short["id"], amount=DUE_1000 * 99 // 100 - 1).status_code == 200
    settle(devnet, anvil_chain, mine_blocks=2)
    waiting = get(api, short["id"])
    assert waiting["status"] == "requires_action" and waiting["amount_received"] == 989  # 9.8999...: rounded down
    assert event_types(short["id"])[2:] == ["payment_intent.partially_funded"]


def test_an_overpayment_succeeds_and_records_the_excess(api, devnet, anvil_chain):
    settle(devnet, anvil_chain)
    intent = create(api, amount=1000)
    assert simulate(api, intent["id"], amount=DUE_1000 + 25 * 10**17).status_code == 200  # 12.50 for 10.00

    settle(devnet, anvil_chain, mine_blocks=2)
    paid = get(api, intent["id"])
    assert paid["status"] == "succeeded" and paid["amount"] == 1000 and paid["amount_received"] == 1250
    charges = charges_of(api, intent["id"])
    assert [(c["amount"], c["amount_base_units"]) for c in charges] == [(1250, str(DUE_1000 + 25 * 10**17))]
    assert event_types(intent["id"])[2:] == ["payment_intent.processing", "payment_intent.succeeded"]


def test_a_payment_in_a_token_the_intent_does_not_accept_is_an_unmatched_deposit(api, devnet, anvil_chain):
    # Given an intent created while the network's USDC is switched off: it accepts USDT only
    from wallets.models import Token

    settle(devnet, anvil_chain)
    Token.objects.filter(network=devnet, currency="usdc").update(is_active=False)
    clear_network_cache()
    intent = create(api, amount=1000)
    tokens = intent["next_action"]["crypto_display_details"]["deposit_addresses"]["bsc"]["supported_tokens"]
    assert [t["token_currency"] for t in tokens] == ["usdt"]
    address = intent["next_action"]["crypto_display_details"]["deposit_addresses"]["bsc"]["address"]
    assert simulate(api, intent["id"], token_currency="usdc").status_code == 400  # the helper will not send it

    # When the customer sends the full amount in USDC anyway (the scanner still reads every token of the network)
    tx_hash = send_token(anvil_chain, token="usdc", to=address, amount=DUE_1000)
    settle(devnet, anvil_chain)
    assert get(api, intent["id"])["status"] == "requires_action" and not deposits()  # recorded at finality only
    settle(devnet, anvil_chain, mine_blocks=2)

    # Then the intent still waits, nothing is credited, and the deposit is recorded against it with its event
    waiting = get(api, intent["id"])
    assert waiting["status"] == "requires_action" and waiting["amount_received"] == 0
    assert charges_of(api, intent["id"]) == []
    [deposit] = deposits()
    assert (deposit.reason, deposit.payment_intent_id, deposit.transfer.tx_hash) == ("unsupported_token", intent["id"],
                                                                                      tx_hash)
    assert deposit.transfer.amount_base_units == DUE_1000 and deposit.transfer.token.currency == "usdc"
    assert event_types(deposit.id) == ["crypto.deposit.unmatched"]
    assert event_types(intent["id"])[2:] == []

    # And paying in USDT afterwards works; the USDC deposit stays unmatched, once
    assert simulate(api, intent["id"]).status_code == 200
    settle(devnet, anvil_chain, mine_blocks=2)
    paid = get(api, intent["id"])
    assert paid["status"] == "succeeded" and paid["amount_received"] == 1000
    assert [c["payment_method_details"]["crypto"]["token_currency"] for c in charges_of(api, intent["id"])] == ["usdt"]
    assert [d.id for d in deposits()] == [deposit.id] and event_types(deposit.id) == ["crypto.deposit.unmatched"]


def expire(api, intent_id):
    from django.utils import timezone

    from payments.models import PaymentIntent
    from payments.tasks import expire_payment_intents

    from wallets.models import Network

    PaymentIntent.objects.filter(pk=intent_id).update(expires_at=timezone.now())
    # the expiry waits for a scan of the chain that ends after the deadline (nothing mined in time is missed)
    assert scan_step(network=Network.objects.get(code="devnet")).caught_up
    assert expire_payment_intents() == 1
    canceled = get(api, intent_id)
    assert canceled["status"] == "canceled" and canceled["cancellation_reason"] == "expired"
    return canceled


@pytest.mark.parametrize("accept", [True, False])
def test_a_late_payment_is_recorded_and_succeeds_only_if_the_merchant_accepts_late_payments(
    api, devnet, anvil_chain, merchant, accept
):
    merchant.accept_late_payments = accept
    merchant.save(update_fields=["accept_late_payments"])
    settle(devnet, anvil_chain)
    intent = create(api, amount=1000)
    expire(api, intent["id"])

    # When the full amount arrives after the expiry
    response = simulate(api, intent["id"])
    assert response.status_code == 200, response.json()
    tx_hash = response.json()["test_helper"]["transaction_hash"]
    settle(devnet, anvil_chain)
    seen = get(api, intent["id"])
    assert seen["status"] == ("processing" if accept else "canceled")
    settle(devnet, anvil_chain, mine_blocks=2)
    late = get(api, intent["id"])

    if accept:  # reopened and paid, with its charge
        assert late["status"] == "succeeded" and late["amount_received"] == 1000
        assert late["cancellation_reason"] is None and late["canceled_at"] is None
        charges = charges_of(api, intent["id"])
        assert [(c["amount"], c["payment_method_details"]["crypto"]["transaction_hash"]) for c in charges] == [
            (1000, tx_hash)]
        assert event_types(intent["id"])[2:] == ["payment_intent.canceled", "payment_intent.processing",
                                                 "payment_intent.succeeded"]
        assert not deposits()
    else:  # stays canceled; the funds are recorded against it, with an event, and not credited
        assert late["status"] == "canceled" and late["amount_received"] == 0 and late["latest_charge"] is None
        assert charges_of(api, intent["id"]) == []
        [deposit] = deposits()
        assert (deposit.reason, deposit.payment_intent_id, deposit.transfer.tx_hash) == (
            "intent_closed", intent["id"], tx_hash)
        assert event_types(deposit.id) == ["crypto.deposit.unmatched"]
        assert event_types(intent["id"])[2:] == ["payment_intent.canceled"]


def test_a_late_payment_short_of_the_amount_stays_canceled_even_when_late_payments_are_accepted(
    api, devnet, anvil_chain, merchant
):
    merchant.accept_late_payments = True
    merchant.save(update_fields=["accept_late_payments"])
    settle(devnet, anvil_chain)
    intent = create(api, amount=1000)
    expire(api, intent["id"])
    assert simulate(api, intent["id"], amount=DUE_1000 // 2).status_code == 200
    settle(devnet, anvil_chain, mine_blocks=2)
    late = get(api, intent["id"])
    assert late["status"] == "canceled" and late["amount_received"] == 0 and charges_of(api, intent["id"]) == []
    [deposit] = deposits()
    assert deposit.reason == "intent_closed" and event_types(deposit.id) == ["crypto.deposit.unmatched"]
    assert event_types(intent["id"])[2:] == ["payment_intent.canceled"]


@pytest.mark.parametrize("accept", [True, False])
def test_a_partially_paid_intent_that_expires_keeps_its_charge_when_more_arrives_late(
    api, devnet, anvil_chain, merchant, accept
):
    # Given an intent paid 4.00 of 10.00 (credited: a Charge), then expired
    merchant.accept_late_payments = accept
    merchant.save(update_fields=["accept_late_payments"])
    settle(devnet, anvil_chain)
    intent = create(api, amount=1000)
    assert simulate(api, intent["id"], amount=4 * 10**18).status_code == 200
    settle(devnet, anvil_chain, mine_blocks=2)
    [first] = charges_of(api, intent["id"])
    assert first["amount"] == 400
    expire(api, intent["id"])

    # When 2.00 more arrives after the expiry (still short in all)
    response = simulate(api, intent["id"], amount=2 * 10**18)
    second_tx = response.json()["test_helper"]["transaction_hash"]
    settle(devnet, anvil_chain, mine_blocks=2)

    # Then the first transfer stays credited once (its Charge), and only the late one is an unmatched deposit
    late = get(api, intent["id"])
    assert late["status"] == "canceled" and late["amount_received"] == 400
    assert [c["id"] for c in charges_of(api, intent["id"])] == [first["id"]]
    [deposit] = deposits()
    assert deposit.reason == "intent_closed" and deposit.transfer.tx_hash == second_tx


def test_a_deposit_to_an_address_no_open_intent_owns_is_unmatched(api, devnet, anvil_chain, merchant):
    from wallets.services import deposit_address_allocate

    settle(devnet, anvil_chain)
    address = deposit_address_allocate(merchant=merchant)  # ours (the scanner watches it), but no intent has it
    tx_hash = send_token(anvil_chain, token="usdt", to=address.address, amount=3 * 10**18)
    settle(devnet, anvil_chain)
    assert not deposits()  # not final yet
    settle(devnet, anvil_chain, mine_blocks=2)

    [deposit] = deposits()
    assert (deposit.reason, deposit.payment_intent_id, deposit.merchant_id) == ("no_open_intent", None, merchant.id)
    assert deposit.transfer.tx_hash == tx_hash and deposit.transfer.amount_base_units == 3 * 10**18
    assert deposit.livemode is False
    [event] = Event.objects.filter(object_id=deposit.id)
    assert event.type == "crypto.deposit.unmatched" and event.merchant_id == merchant.id
    assert event.data["object"]["amount_base_units"] == str(3 * 10**18)
    assert event.data["object"]["reason"] == "no_open_intent"
    assert api.get("/v1/charges").json()["data"] == []
    settle(devnet, anvil_chain, mine_blocks=1)  # applying again records nothing twice
    assert len(deposits()) == 1 and Event.objects.filter(object_id=deposit.id).count() == 1


def test_a_late_payment_in_two_parts_is_never_both_unmatched_and_credited(api, devnet, anvil_chain, merchant):
    # Given a merchant that accepts late payments, an expired intent, and a first late part (5.00 of 10.00) that
    # became final on its own: recorded as an unmatched deposit (the intent stays canceled), with its event
    merchant.accept_late_payments = True
    merchant.save(update_fields=["accept_late_payments"])
    settle(devnet, anvil_chain)
    intent = create(api, amount=1000)
    expire(api, intent["id"])
    assert simulate(api, intent["id"], amount=DUE_1000 // 2).status_code == 200
    settle(devnet, anvil_chain, mine_blocks=2)
    [first] = deposits()
    assert first.reason == "intent_closed"

    # When the rest arrives
    assert simulate(api, intent["id"], amount=DUE_1000 // 2).status_code == 200
    settle(devnet, anvil_chain)
    settle(devnet, anvil_chain, mine_blocks=2)

    # Then the first part stays what it was announced as (unmatched, not credited as well), so the rest alone does
    # not pay the intent: it stays canceled and the second part is unmatched too; each transfer counted once
    late = get(api, intent["id"])
    assert late["status"] == "canceled" and late["amount_received"] == 0
    assert charges_of(api, intent["id"]) == []
    assert [d.reason for d in deposits()] == ["intent_closed", "intent_closed"]
    assert event_types(intent["id"])[2:] == ["payment_intent.canceled"]


def test_the_payments_side_holding_an_address_never_blocks_the_scanner_recording_a_transfer_to_it(
    api, devnet, anvil_chain
):
    """The scanner's transfer and queue rows reference the deposit address (foreign keys PostgreSQL checks at COMMIT,
    with a KEY SHARE lock); the payments side locks the address while it applies it. Were that lock FOR UPDATE, the
    two would wait on each other (a deadlock, found by the kill -9 test: the watcher died of it)."""
    import threading

    from django.db import connection, transaction

    from payments.models import PaymentIntent
    from wallets import activity
    from wallets.models import Transfer

    settle(devnet, anvil_chain)
    intent = create(api, amount=1000)
    address_id = PaymentIntent.objects.get(pk=intent["id"]).deposit_address_id
    locked, release = threading.Event(), threading.Event()

    def applying():  # the payments side, in the middle of applying this address
        try:
            with transaction.atomic():
                activity.deposit_address_lock(deposit_address_id=address_id)
                locked.set()
                release.wait(60)
        finally:
            connection.close()

    thread = threading.Thread(target=applying)
    thread.start()
    try:
        assert locked.wait(30)
        assert simulate(api, intent["id"]).status_code == 200
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '30s'")  # a hang guard: with the bug the step's COMMIT waits here
        for _ in range(10):
            step = scan_step(network=devnet)
            if step.caught_up:
                break
        assert Transfer.objects.filter(deposit_address_id=address_id).count() == 1
    finally:
        release.set()
        thread.join(timeout=60)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    funding.address_activity_process()
    assert get(api, intent["id"])["status"] == "processing"
