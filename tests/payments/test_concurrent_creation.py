"""Concurrent creation against the real server and PostgreSQL: every intent gets its own address."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import stripe

from payments.models import PaymentIntent
from wallets.models import DepositAddress

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("ready")]


def test_200_intents_from_16_clients_get_200_distinct_addresses(live_server, secret_key):
    def worker(n):
        client = stripe.StripeClient(secret_key, base_addresses={"api": live_server.url}, max_network_retries=0)
        out = []
        for i in range(n):
            pi = client.v1.payment_intents.create(params={"amount": 100 + i, "currency": "usd"})
            out.append(pi.next_action.crypto_display_details.deposit_addresses["bsc"].address)
        return out

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(worker, [13] * 8 + [12] * 8))

    addresses = [a for chunk in results for a in chunk]
    assert len(addresses) == 200 and len(set(addresses)) == 200
    assert PaymentIntent.objects.count() == 200
    assert DepositAddress.objects.count() == 200
    assert DepositAddress.objects.values("index").distinct().count() == 200
