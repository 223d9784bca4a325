"""`manage.py metrics_serve`: the instruments of every process of this machine (PROMETHEUS_MULTIPROC_DIR) on a
port of their own, for a machine that runs Celery workers, `watch` or `deliver_webhooks` but no web process. The
business gauges come from the web tier's /metrics (they are read from the database, the same from anywhere)."""
import signal
import threading

from django.core.management.base import BaseCommand, CommandError
from prometheus_client import start_http_server

from gateway.metrics import MULTIPROC_DIR_ENV, instruments_registry, multiprocess_mode


class Command(BaseCommand):
    help = "Serve this machine's Prometheus instruments (multiprocess directory) on ADDR:PORT until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1", help="Listen address (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=9464, help="Listen port (default 9464).")

    def handle(self, *args, addr, port, **options):
        if not multiprocess_mode():
            raise CommandError(f"set {MULTIPROC_DIR_ENV} to the directory the machine's processes write to")
        server, thread = start_http_server(port, addr=addr, registry=instruments_registry())
        self.stdout.write(f"metrics of {MULTIPROC_DIR_ENV} on http://{addr}:{port}/metrics", ending="\n")
        self.stdout.flush()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        server.shutdown()
