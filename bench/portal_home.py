"""The portal home's figures on one merchant with many intents: how long each query of payments.home takes.

```sh
.venv/bin/python bench/portal_home.py [--intents 1000000] [--paid-share 0.2] [--repeat 5] [--no-record]
```

Drops and re-creates the `gateway_bench_portal` database, migrates it, creates one merchant, then writes with SQL
(generate_series) N test-mode intents spread over 90 days, of which a share succeeded with a Charge and its transfer
(half on bsc-testnet USDT, half on sepolia USDC) and 1% are open and partly paid, plus 100,000 intents of another
merchant. Then it times the home's queries (volume per day, conversion, median time to pay, attention, lag) for
7, 30 and 90 days, the median of --repeat runs each, and the whole page through Django's test client without and
with the period figures cached (GATEWAY_PORTAL_HOME_CACHE_SECONDS). Prints the figures and appends them to
docs/benchmarks.md.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chain_common as cc  # noqa: E402

DB_NAME = "gateway_bench_portal"


def fill(*, intents: int, paid_share: float) -> str:
    from django.db import connection

    from merchants import services
    from wallets.models import Token

    merchant = services.merchant_create(email="bench@example.com", name="Bench", password="bench-password-123")
    other = services.merchant_create(email="other@example.com", name="Other")
    usdt = Token.objects.get(network__code="bsc-testnet", currency="usdt")
    usdc = Token.objects.get(network__code="sepolia", currency="usdc")
    paid_every = max(1, round(1 / paid_share)) if paid_share > 0 else 0
    with connection.cursor() as cur:
        for who, count, offset in ((merchant.pk, intents, 0), (other.pk, 100_000, intents)):
            cc.say(f"intents of {who}: {count:,}")
            cur.execute(f"""
                INSERT INTO payments_paymentintent (id, merchant_id, livemode, status, amount, amount_received,
                    amount_seen, currency, description, metadata, receipt_email, return_url, client_secret, networks,
                    cancellation_reason, created, updated, idempotency_key)
                SELECT 'pi_b' || (g + {offset}), %s, false,
                    CASE WHEN {paid_every} > 0 AND mod(g, {paid_every or 1}) = 0 THEN 'succeeded'
                         WHEN mod(g, 100) = 1 THEN 'requires_action' WHEN mod(g, 100) = 2 THEN 'processing'
                         ELSE 'canceled' END,
                    2000, 0, CASE WHEN mod(g, 100) = 1 THEN 500 ELSE 0 END, 'usd', '', '{{}}', '', '',
                    'pi_b' || (g + {offset}) || '_secret', '[]', '',
                    now() - mod(g, 90) * interval '1 day' - mod(g, 86400) * interval '1 second', now(), ''
                FROM generate_series(1, %s) g""", [who, count])
        if paid_every:
            cc.say("deposit addresses, transfers and charges of the paid intents")
            cur.execute(f"""
                INSERT INTO wallets_depositaddress (index, address, merchant_id, created)
                SELECT 1000000 + g, '0x' || lpad(to_hex(g), 40, '0'), %s, now()
                FROM generate_series({paid_every}, %s, {paid_every}) g""", [merchant.pk, intents])
            cur.execute(f"""
                INSERT INTO wallets_transfer (network_id, token_id, tx_hash, log_index, block_number, block_hash,
                    from_address, to_address, deposit_address_id, amount_base_units, seen_at, finalized_at)
                SELECT CASE WHEN mod(g, 2) = 0 THEN %s ELSE %s END, CASE WHEN mod(g, 2) = 0 THEN %s ELSE %s END,
                    '0x' || lpad(to_hex(g), 64, '0'), 0, g, '0x' || lpad(to_hex(g), 64, '0'), '0x' || repeat('1', 40),
                    d.address, d.id, CASE WHEN mod(g, 2) = 0 THEN 20 * 10^18 ELSE 20 * 10^6 END, now(), now()
                FROM generate_series({paid_every}, %s, {paid_every}) g
                JOIN wallets_depositaddress d ON d.index = 1000000 + g""",
                        [usdt.network_id, usdc.network_id, usdt.pk, usdc.pk, intents])
            cur.execute(f"""
                INSERT INTO payments_charge (id, merchant_id, livemode, payment_intent_id, transfer_id, status, amount,
                    currency, created)
                SELECT 'ch_b' || g, %s, false, 'pi_b' || g, t.id, 'succeeded', 2000, 'usd',
                    p.created + mod(g, 900) * interval '1 second'
                FROM generate_series({paid_every}, %s, {paid_every}) g
                JOIN wallets_transfer t ON t.block_number = g AND t.network_id IN (%s, %s)
                JOIN payments_paymentintent p ON p.id = 'pi_b' || g""",
                        [merchant.pk, intents, usdt.network_id, usdc.network_id])
            cur.execute("""UPDATE payments_paymentintent p SET latest_charge_id = c.id
                           FROM payments_charge c WHERE c.payment_intent_id = p.id""")
        cur.execute("VACUUM ANALYZE")
    return merchant.pk


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--intents", type=int, default=1_000_000)
    parser.add_argument("--paid-share", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    load_before = cc.load_average()
    cc.say(f"database {DB_NAME}: drop, create, migrate")
    cc.database_reset(DB_NAME)
    env = cc.bench_env(DB_NAME)
    env["ALLOWED_HOSTS"] = "testserver,127.0.0.1"
    cc.django_setup(env)
    from django.core.management import call_command

    call_command("migrate", "--no-input", verbosity=0)
    start = time.perf_counter()
    merchant_id = fill(intents=args.intents, paid_share=args.paid_share)
    fill_s = time.perf_counter() - start

    from django.test import Client

    from merchants.models import Merchant
    from payments import home
    from tests.otp import login_verified

    merchant = Merchant.objects.get(pk=merchant_id)
    rows = []
    for days in home.PERIODS:
        since = home.period_start(days=days)
        figures = {
            "volume per day": lambda: home.volume_by_day(merchant=merchant, livemode=False, since=since),
            "conversion": lambda: home.conversion(merchant=merchant, livemode=False, since=since),
            "median time to pay": lambda: home.median_seconds_to_pay(merchant=merchant, livemode=False, since=since),
        }
        for name, fn in figures.items():
            rows.append((f"{name}, {days} days", timed(fn, args.repeat)))
    rows.append(("attention", timed(lambda: home.attention(merchant=merchant, livemode=False), args.repeat)))
    rows.append(("lag", timed(lambda: home.lagging_networks(merchant=merchant, livemode=False), args.repeat)))
    from django.conf import settings

    client = Client(HTTP_X_FORWARDED_PROTO="https", secure=True)
    login_verified(client, merchant.user)
    for ttl, label in ((0, "no cache"), (60, "figures cached")):
        settings.GATEWAY_PORTAL_HOME_CACHE_SECONDS = ttl
        for days in home.PERIODS:
            response = client.get(f"/portal/?days={days}", secure=True)
            assert response.status_code == 200, response.status_code
            rows.append((f"whole page (test client, {label}), {days} days",
                         timed(lambda d=days: client.get(f"/portal/?days={d}", secure=True), args.repeat)))

    conversion = home.conversion(merchant=merchant, livemode=False, since=home.period_start(days=90))
    info = cc.machine()
    lines = [f"## Portal home on {args.intents:,} intents of one merchant ({time.strftime('%Y-%m-%d')})", "",
             f"`bench/portal_home.py --intents {args.intents} --paid-share {args.paid_share}`: {args.intents:,} test "
             f"intents over 90 days ({conversion.succeeded:,} succeeded with a Charge, 1% open), plus 100,000 of "
             f"another merchant; written with SQL in {fill_s:.0f} s. Median of {args.repeat} runs per query, "
             "production settings, warm cache.", "",
             "| query | ms |", "|---|---|"]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in rows]
    lines += ["", cc.machine_line(info), f"Load average before: {load_before} (the machine is shared).", ""]
    section = "\n".join(lines)
    print(section)
    if not args.no_record:
        cc.append_doc(section)


if __name__ == "__main__":
    main()
