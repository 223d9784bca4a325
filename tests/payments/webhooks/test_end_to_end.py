"""A real payment on the devnet: the receiver on 127.0.0.1 gets every event of it, each verified by Stripe's SDK
with the endpoint's secret."""
import pytest
import stripe

from payments.webhooks.delivery import deliver
from tests.payments.conftest import create, settle, simulate

from .conftest import SECRET

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_event_of_a_devnet_payment_is_delivered_and_verifies(api, devnet, anvil_chain, receiver,
                                                                    make_endpoint):
    endpoint = make_endpoint(receiver.on("/ok"))
    settle(devnet, anvil_chain)
    intent = create(api)
    deliver(until_idle=True, duration=20)
    assert simulate(api, intent["id"]).status_code == 200
    settle(devnet, anvil_chain)
    deliver(until_idle=True, duration=20)
    settle(devnet, anvil_chain, mine_blocks=2)
    deliver(until_idle=True, duration=20)

    events = [stripe.Webhook.construct_event(r.body.decode(), r.headers["Stripe-Signature"], SECRET)
              for r in receiver.at("/ok")]
    # created and requires_action are sent together, as are succeeded and charge.succeeded: their order may vary
    assert sorted(e.type for e in events) == sorted([
        "payment_intent.created", "payment_intent.requires_action", "payment_intent.processing",
        "payment_intent.succeeded", "charge.succeeded"])
    by_type = {e.type: e for e in events}
    assert by_type["payment_intent.succeeded"].data.object.id == intent["id"]
    assert by_type["payment_intent.succeeded"].data.object.status == "succeeded"
    assert by_type["charge.succeeded"].data.object.payment_intent == intent["id"]
    assert all(e.livemode is False for e in events)
    assert endpoint.deliveries.filter(status="succeeded").count() == 5
