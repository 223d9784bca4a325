"""/v1/balance, /v1/balance_transactions and /v1/payouts: Stripe's shapes, derived from the ledger; refusals name
the field and write nothing; every object is scoped to its merchant and mode."""
import pytest

from payments.models import Event
from settlements.models import AccountKind, Payout
from settlements.payouts import payouts_advance
from settlements.selectors import ledger_problems
from tests.conftest import FormClient
from tests.settlements.conftest import ONE_USDT, balance, fees, hold, owed
from tests.settlements.payout_fixtures import RECIPIENT, create_payout, funded, snapshot, usable_address

pytestmark = pytest.mark.usefixtures("ledger_ready")


def client_for(key: str) -> FormClient:
    client = FormClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def test_balance_shows_available_and_pending_in_cents_with_the_base_units_per_token(api, merchant):
    # given a released Charge of 10 USDT and a held one of 2.505 USDT
    funded(merchant, 10 * ONE_USDT)
    hold(merchant, 3600)
    funded(merchant, 2505 * ONE_USDT // 1000)

    # when the merchant reads its balance
    body = api.get("/v1/balance").json()

    # then available and pending are cents (rounded toward zero) with the exact base units beside them
    assert body["object"] == "balance" and body["livemode"] is False
    assert body["available"] == [{"amount": 1000, "currency": "usd", "source_types": {"crypto": 1000},
                                  "crypto": [{"network": "bsc", "token_currency": "usdt",
                                              "amount_base_units": str(10 * ONE_USDT)}]}]
    assert body["pending"][0]["amount"] == 250
    assert body["pending"][0]["crypto"][0]["amount_base_units"] == str(2505 * ONE_USDT // 1000)


def test_a_charge_is_a_balance_transaction_with_its_fee_and_a_payout_another(api, merchant):
    # given a Charge of 10 USDT with a 1% fee, then a payout of 5 USD
    fees(merchant, bps=100)
    charge = funded(merchant, 10 * ONE_USDT)
    usable_address(merchant)
    payout = create_payout(api, 500).json()

    # when the merchant lists its balance transactions
    page = api.get("/v1/balance_transactions").json()

    # then newest first: the payout (-5.00), the charge (10.00, fee 0.10, net 9.90)
    assert page["object"] == "list" and page["has_more"] is False
    txn_payout, txn_charge = page["data"]
    assert (txn_charge["type"], txn_charge["source"], txn_charge["amount"], txn_charge["fee"], txn_charge["net"],
            txn_charge["status"], txn_charge["currency"]) == ("charge", charge.id, 1000, 10, 990, "available", "usd")
    assert txn_charge["crypto"] == {"network": "bsc", "token_currency": "usdt",
                                    "amount_base_units": str(10 * ONE_USDT), "fee_base_units": str(ONE_USDT // 10),
                                    "net_base_units": str(99 * ONE_USDT // 10)}
    assert txn_charge["fee_details"][0]["amount"] == 10
    assert (txn_payout["type"], txn_payout["source"], txn_payout["amount"], txn_payout["net"]) == \
        ("payout", payout["id"], -500, -500)
    assert payout["balance_transaction"] == txn_payout["id"]

    # filters, retrieve, cursor pagination
    assert [t["id"] for t in api.get("/v1/balance_transactions?type=charge").json()["data"]] == [txn_charge["id"]]
    assert [t["id"] for t in api.get(f"/v1/balance_transactions?source={charge.id}").json()["data"]] == \
        [txn_charge["id"]]
    assert [t["id"] for t in api.get(f"/v1/balance_transactions?payout={payout['id']}").json()["data"]] == \
        [txn_payout["id"]]
    assert api.get(f"/v1/balance_transactions/{txn_charge['id']}").json() == txn_charge
    first = api.get("/v1/balance_transactions?limit=1").json()
    assert first["has_more"] is True and first["data"][0]["id"] == txn_payout["id"]
    second = api.get(f"/v1/balance_transactions?limit=1&starting_after={txn_payout['id']}").json()
    assert second["has_more"] is False and second["data"][0]["id"] == txn_charge["id"]
    bad = api.get("/v1/balance_transactions?type=nonsense")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "type"


def test_a_held_charge_is_pending_until_its_release(api, merchant):
    hold(merchant, 3600)
    funded(merchant)
    txn = api.get("/v1/balance_transactions").json()["data"][0]
    assert txn["status"] == "pending" and txn["available_on"] > txn["created"] + 3500


def test_a_payout_reserves_the_amount_and_a_cancel_gives_it_back(api, merchant):
    # given 10 USDT available and a usable payout address
    funded(merchant)
    usable_address(merchant)

    # when the merchant pays out 4 USD
    response = create_payout(api, 400, **{"metadata[order]": "A-1", "description": "weekly"})

    # then the payout is pending, 4 USDT moved from available to reserved, payout.created written
    body = response.json()
    assert response.status_code == 200, body
    assert body["id"].startswith("po_") and body["object"] == "payout" and body["status"] == "pending"
    assert (body["amount"], body["currency"], body["destination"], body["metadata"]) == \
        (400, "usd", RECIPIENT, {"order": "A-1"})
    assert body["crypto"]["amount_base_units"] == str(4 * ONE_USDT) and body["crypto"]["network"] == "bsc"
    assert owed(merchant)["available"] == 6 * ONE_USDT
    assert -balance(AccountKind.MERCHANT_RESERVED, merchant=merchant) == 4 * ONE_USDT
    assert list(Event.objects.filter(object_id=body["id"]).values_list("type", flat=True)) == ["payout.created"]
    assert api.get(f"/v1/payouts/{body['id']}").json()["status"] == "pending"
    assert [p["id"] for p in api.get("/v1/payouts").json()["data"]] == [body["id"]]

    # metadata can change
    updated = api.post(f"/v1/payouts/{body['id']}", {"metadata[order]": "", "metadata[x]": "y"}).json()
    assert updated["metadata"] == {"x": "y"}

    # when it is canceled while pending: the money is back, payout.canceled, a payout_cancel balance transaction
    canceled = api.post(f"/v1/payouts/{body['id']}/cancel").json()
    assert canceled["status"] == "canceled"
    assert owed(merchant)["available"] == 10 * ONE_USDT
    assert balance(AccountKind.MERCHANT_RESERVED, merchant=merchant) == 0
    assert Event.objects.filter(object_id=body["id"], type="payout.canceled").count() == 1
    assert api.get("/v1/balance_transactions?type=payout_cancel").json()["data"][0]["amount"] == 400
    assert canceled["failure_balance_transaction"] is not None

    # a second cancel is refused, nothing changes
    before = snapshot()
    again = api.post(f"/v1/payouts/{body['id']}/cancel")
    assert again.status_code == 400 and again.json()["error"]["code"] == "payout_unexpected_state"
    assert snapshot() == before and ledger_problems() == []


@pytest.mark.parametrize("params, param", [
    ({"amount": 1001}, "amount"),
    ({"currency": "eur"}, "currency"),
    ({"crypto[network]": "solana"}, "crypto[network]"),
    ({"crypto[token_currency]": "dai"}, "crypto[token_currency]"),
    ({"amount": "10.5"}, "amount"),
    ({"amount": 0}, "amount"),
    ({"bogus": "1"}, "bogus"),
])
def test_bad_payouts_are_refused_naming_the_field_and_nothing_is_written(api, merchant, params, param):
    funded(merchant)
    usable_address(merchant)
    before = snapshot()
    response = create_payout(api, **{"amount": 500, **params})
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["param"] == param
    assert snapshot() == before and owed(merchant)["available"] == 10 * ONE_USDT


def test_a_payout_without_a_usable_address_is_refused(api, merchant):
    from settlements.payouts import payout_address_add
    from tests.settlements.conftest import token

    funded(merchant)
    before = snapshot()
    missing = create_payout(api, 100)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "payout_address_missing"
    assert missing.json()["error"]["param"] == "crypto[network]"
    payout_address_add(merchant=merchant, token=token(), address=RECIPIENT)  # cooling off for 24 h
    cooling = create_payout(api, 100)
    assert cooling.status_code == 400 and cooling.json()["error"]["code"] == "payout_address_cooling_off"
    assert snapshot() == before


def test_another_merchants_objects_are_404_and_a_publishable_key_reaches_nothing(api, merchant, make_key):
    from tests.merchants.factories import MerchantFactory

    # given merchant A's payout and balance transactions
    funded(merchant)
    usable_address(merchant)
    payout = create_payout(api, 100).json()
    txn = api.get("/v1/balance_transactions").json()["data"][0]["id"]
    other = client_for(make_key(MerchantFactory()))

    # then merchant B sees none of them and can change none
    for path in (f"/v1/payouts/{payout['id']}", f"/v1/balance_transactions/{txn}"):
        assert other.get(path).status_code == 404
    assert other.post(f"/v1/payouts/{payout['id']}/cancel").status_code == 404
    assert other.post(f"/v1/payouts/{payout['id']}", {"metadata[a]": "b"}).status_code == 404
    assert other.get("/v1/payouts").json()["data"] == []
    assert other.get("/v1/balance_transactions").json()["data"] == []
    assert other.get("/v1/balance").json()["available"] == []
    # the merchant's live key sees no test-mode object
    live = client_for(make_key(merchant, livemode=True))
    assert live.get(f"/v1/payouts/{payout['id']}").status_code == 404
    assert live.get("/v1/balance").json()["available"] == []
    # and cannot pay the test-mode money out: the live bsc token has no payout address, its balance is zero
    before = snapshot()
    refused = create_payout(live, 100)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "payout_address_missing"
    assert snapshot() == before
    # a publishable key reaches none of these endpoints
    publishable = client_for(make_key(merchant, kind="publishable"))
    for path in ("/v1/balance", "/v1/balance_transactions", f"/v1/balance_transactions/{txn}", "/v1/payouts",
                 f"/v1/payouts/{payout['id']}"):
        assert publishable.get(path).status_code == 403, path
    assert create_payout(publishable, 100).status_code == 403
    assert publishable.post(f"/v1/payouts/{payout['id']}/cancel").status_code == 403
    assert Payout.objects.get(pk=payout["id"]).status == "pending"


def test_a_payout_waits_with_a_reason_while_the_hot_wallet_cannot_pay(api, merchant):
    funded(merchant)
    usable_address(merchant)
    payout = create_payout(api, 100).json()

    payouts_advance()  # no hot wallet registered on the network
    assert api.get(f"/v1/payouts/{payout['id']}").json()["crypto"]["pending_reason"] == "hot_wallet_missing"
    assert Payout.objects.get(pk=payout["id"]).status == "pending"


def test_a_payout_created_twice_with_one_idempotency_key_is_one_payout(api, merchant):
    funded(merchant)
    usable_address(merchant)
    first = create_payout(api, 100, HTTP_IDEMPOTENCY_KEY="po-1")
    again = create_payout(api, 100, HTTP_IDEMPOTENCY_KEY="po-1")
    assert first.status_code == again.status_code == 200 and first.json()["id"] == again.json()["id"]
    assert Payout.objects.count() == 1 and owed(merchant)["available"] == 9 * ONE_USDT
    other = create_payout(api, 200, HTTP_IDEMPOTENCY_KEY="po-1")
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"


def test_the_ops_command_lists_open_payouts(api, merchant, capsys):
    import json

    from django.core.management import call_command

    funded(merchant)
    usable_address(merchant)
    payout = create_payout(api, 100).json()
    call_command("payouts", "list", "--json")
    listed = json.loads(capsys.readouterr().out)["open"]
    assert [(p["id"], p["status"]) for p in listed] == [(payout["id"], "pending")]


def test_a_frozen_merchant_is_paid_nothing(api, merchant):
    from merchants.services import merchant_freeze, merchant_unfreeze
    from settlements.payouts import payout_schedule_set, payouts_run_automatic

    # given 10 USDT available, a usable address, a daily schedule and a payout created before the freeze
    funded(merchant)
    usable_address(merchant)
    payout_schedule_set(merchant=merchant, interval="daily")
    earlier = create_payout(api, 100).json()
    merchant_freeze(merchant=merchant, reason="chargeback review")

    # when the frozen merchant asks for a payout: refused with a clear error (the key's cached account is older)
    before = snapshot()
    refused = create_payout(api, 100)
    assert refused.status_code == 403
    assert (refused.json()["error"]["type"], refused.json()["error"]["code"]) == ("invalid_request_error",
                                                                                  "account_frozen")
    assert "frozen" in refused.json()["error"]["message"]
    # and the automatic payouts and the send skip it: the earlier payout waits, with its reason
    assert payouts_run_automatic(merchant=merchant) == []
    payouts_advance()
    waiting = api.get(f"/v1/payouts/{earlier['id']}").json()
    assert (waiting["status"], waiting["crypto"]["pending_reason"]) == ("pending", "account_frozen")
    assert snapshot() == before and owed(merchant)["available"] == 9 * ONE_USDT

    # once unfrozen, the schedule pays out what is available and the earlier payout goes on
    merchant_unfreeze(merchant=merchant)
    [automatic] = payouts_run_automatic(merchant=merchant)
    assert automatic.amount == 900 and owed(merchant)["available"] == 0
    payouts_advance()
    assert api.get(f"/v1/payouts/{earlier['id']}").json()["crypto"]["pending_reason"] == "hot_wallet_missing"
