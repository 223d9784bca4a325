"""`manage.py deliver_webhooks`: the low-latency webhook sender.

Wakes on PostgreSQL notifications of new events (LISTEN payments_event) and polls every half second anyway: fans
events out, claims due deliveries, POSTs them concurrently (a budget of requests in flight per endpoint), records
every attempt. Run one or several beside the Celery beat task `payments.tasks.deliver_webhooks`: they share the
work (SKIP LOCKED, leases). Stops on SIGINT / SIGTERM after the requests in flight are answered or time out.
"""
import asyncio
import json
import signal

from django.core.management.base import BaseCommand

from gateway.logs import role_set
from payments.webhooks.delivery import Dispatcher


class Command(BaseCommand):
    help = "Deliver webhooks continuously (LISTEN/NOTIFY, polling as a fallback)."

    def add_arguments(self, parser):
        parser.add_argument("--duration", type=float, default=0.0, metavar="SECONDS",
                            help="stop after SECONDS (default: run until SIGINT / SIGTERM)")
        parser.add_argument("--poll", type=float, default=0.5, metavar="SECONDS", help="poll interval (0.5)")
        parser.add_argument("--batch", type=int, default=200, help="deliveries claimed at a time (200)")

    def handle(self, *args, duration, poll, batch, **options):
        role_set("sender")  # the role in the log lines (gateway.logs)
        counts = asyncio.run(self._run(duration or None, poll, batch))
        self.stdout.write(json.dumps(counts))

    async def _run(self, duration, poll, batch):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        self.stderr.write("delivering webhooks")
        return await Dispatcher(batch=batch, poll_seconds=poll).run(duration=duration, listen=True, stop=stop)
