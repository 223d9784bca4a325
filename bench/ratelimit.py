#!/usr/bin/env python
"""What a rate-limit check costs per API request: gateway.ratelimit.api_key_check against the local Redis.

    .venv/bin/python bench/ratelimit.py [--requests 20000] [--redis redis://127.0.0.1:6379/9]

Prints, in microseconds per call (p50, p99, mean) over --requests calls made one after the other: a bare Redis PING
(the round trip itself), `api_key_check` (the per-key counter plus the IP's bad-key counter in one pipeline: what
every authenticated /v1 request pays) and, for comparison, what it would cost as two separate round trips. Uses the
benchmarks' Redis database 9 (emptied of its rate-limit counters before and after); talks to 127.0.0.1 only.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(calls: int, fn) -> list[float]:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    args = parser.parse_args()
    if not args.redis.startswith(("redis://127.0.0.1", "redis://localhost")):
        raise SystemExit("127.0.0.1 only")

    os.environ.update(DJANGO_SETTINGS_MODULE="gateway.settings.test", REDIS_URL=args.redis)
    import django

    django.setup()
    from django.conf import settings
    from django.test import RequestFactory

    from gateway import ratelimit
    from merchants.keys import generate_key, hash_key

    settings.GATEWAY_RATE_LIMIT_TEST_READ = settings.GATEWAY_RATE_LIMIT_BAD_KEYS_PER_IP = "100000000/s"
    client = ratelimit._redis()

    def clear():
        keys = list(client.scan_iter(ratelimit.PREFIX + "*"))
        if keys:
            client.delete(*keys)

    request = RequestFactory().get("/v1/payment_intents", REMOTE_ADDR="198.51.100.7")
    digest = hash_key(generate_key("sk", False))
    rate = ratelimit.parse_rate("100000000/s")

    def two_round_trips():
        ratelimit.count([], [(f"badkey:{ratelimit.client_ip(request)}", rate)])
        ratelimit.count([(f"key:R:{digest[:32]}", rate)])

    clear()
    try:
        for fn in (client.ping, lambda: ratelimit.api_key_check(request, key_digest=digest, livemode=False)):
            timed(2000, fn)  # warm-up
        rows = [
            ("Redis PING (one round trip)", timed(args.requests, client.ping)),
            ("api_key_check (one pipeline)",
             timed(args.requests, lambda: ratelimit.api_key_check(request, key_digest=digest, livemode=False))),
            ("same counters, two round trips", timed(args.requests, two_round_trips)),
        ]
    finally:
        clear()
    import redis

    parser_name = "hiredis" if redis.utils.HIREDIS_AVAILABLE else "pure Python"
    print(f"{args.requests} calls each, one after the other; redis-py {redis.__version__} ({parser_name} parser)")
    print(f"{'':34} {'p50 us':>8} {'p99 us':>8} {'mean us':>8}")
    for name, samples in rows:
        samples.sort()
        p99 = samples[int(len(samples) * 0.99)]
        print(f"{name:34} {statistics.median(samples):8.1f} {p99:8.1f} {statistics.fmean(samples):8.1f}")


if __name__ == "__main__":
    main()
