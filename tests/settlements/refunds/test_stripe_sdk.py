"""Stripe's official Python SDK, unchanged, drives /v1/refunds on a live server."""
import pytest
import stripe

from settlements.refunds.models import Refund

from .conftest import CHECKSUMMED, credited_charge

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ledger_ready")]


@pytest.fixture
def sdk(live_server, secret_key):
    return stripe.StripeClient(secret_key, base_addresses={"api": live_server.url}, max_network_retries=0)


def test_refunds_through_the_sdk(sdk, merchant):
    charge = credited_charge(merchant)
    first = sdk.v1.refunds.create(params={"payment_intent": charge.payment_intent_id, "amount": 250,
                                          "reason": "requested_by_customer", "metadata": {"order": "A-1"}})
    assert first.id.startswith("re_") and first.status == "requires_action" and first.amount == 250
    assert first.next_action.crypto_refund_claim.url.endswith(Refund.objects.get(pk=first.id).claim_token)
    second = sdk.v1.refunds.create(params={"charge": charge.id, "crypto": {"destination_address": CHECKSUMMED}})
    assert second.status == "pending" and second.amount == 750
    assert second.destination_details.crypto.address == CHECKSUMMED.lower()

    assert sdk.v1.refunds.retrieve(first.id).metadata.to_dict() == {"order": "A-1"}
    updated = sdk.v1.refunds.update(first.id, params={"metadata": {"order": "", "ticket": "T-1"}})
    assert updated.metadata.to_dict() == {"ticket": "T-1"}
    listed = [r.id for r in sdk.v1.refunds.list(params={"charge": charge.id, "limit": 1}).auto_paging_iter()]
    assert listed == [second.id, first.id]
    assert sdk.v1.charges.retrieve(charge.id).amount_refunded == 1000

    canceled = sdk.v1.refunds.cancel(first.id)
    assert canceled.status == "canceled"
    assert sdk.v1.charges.retrieve(charge.id).amount_refunded == 750

    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.refunds.create(params={"charge": charge.id, "amount": 251})
    assert (exc.value.code, exc.value.param) == ("amount_too_large", "amount")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.refunds.create(params={"charge": charge.id, "crypto": {"destination_address": "0x" + "0" * 40}})
    assert exc.value.param == "crypto[destination_address]"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.refunds.retrieve("re_doesnotexist")
    assert exc.value.http_status == 404
