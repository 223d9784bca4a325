"""A local receiver for webhook deliveries (http.server in a thread on 127.0.0.1), a server that never answers, and
endpoints made directly."""
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from merchants.models import WebhookEndpoint

SECRET = "whsec_test_0123456789abcdef0123456789abcdef"


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    at: float

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers by path: /ok 200, /status/<code> that code, /redirect 302 to /ok, /slow/<seconds> then 200,
    /flaky/<n> 500 for the first n requests then 200."""

    url: str
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counters: dict = field(default_factory=dict)

    def on(self, path: str) -> str:
        return self.url + path

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]


def _handler(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                receiver.received.append(Received(self.path, dict(self.headers), body, time.time()))
                count = receiver.counters[self.path] = receiver.counters.get(self.path, 0) + 1
            parts = self.path.strip("/").split("/")
            code, headers = 200, {}
            if parts[0] == "status":
                code = int(parts[1])
            elif parts[0] == "redirect":
                code, headers = 302, {"Location": receiver.on("/ok")}
            elif parts[0] == "slow":
                time.sleep(float(parts[1]))
            elif parts[0] == "flaky":
                code = 500 if count <= int(parts[1]) else 200
            reply = (b"x" * 3000) if parts[0] == "big" else json.dumps({"received": True, "code": code}).encode()
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            try:
                self.wfile.write(reply)
            except OSError:
                pass

    return Handler


class _ReceiverServer(ThreadingHTTPServer):
    # Room for the hundred connections several senders open at once: with http.server's backlog of 5, connections
    # are dropped, time out in the sender and are retried (duplicates of the receiver's making).
    request_queue_size = 1024


@pytest.fixture
def receiver():
    receiver = Receiver(url="")
    server = _ReceiverServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # a sender killed mid-request resets its connection
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@dataclass
class Hanging:
    """A server on 127.0.0.1 that accepts connections and never answers: every request to it hangs until the
    sender's timeout, or until `close()` (then the sender sees the connection closed)."""

    url: str
    listener: socket.socket
    connections: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: threading.Event = field(default_factory=threading.Event)

    def on(self, path: str) -> str:
        return self.url + path

    def count(self) -> int:
        """Connections accepted and held: the requests in flight to this server."""
        with self.lock:
            return len(self.connections)

    def accept_forever(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:  # the timeout, or the listener closed
                continue
            with self.lock:
                if self.closed.is_set():
                    conn.close()
                else:
                    self.connections.append(conn)

    def close(self) -> None:
        with self.lock:
            self.closed.set()
            for conn in self.connections:
                conn.close()
        self.listener.close()


@pytest.fixture
def hanging():
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    listener.settimeout(0.1)
    server = Hanging(url=f"http://127.0.0.1:{listener.getsockname()[1]}", listener=listener)
    thread = threading.Thread(target=server.accept_forever, daemon=True)
    thread.start()
    yield server
    server.close()
    thread.join(timeout=5)


@pytest.fixture
def make_endpoint(merchant):
    def make(url, *, livemode=False, enabled_events=("*",), merchant_=None, **kwargs):
        return WebhookEndpoint.objects.create(
            merchant=merchant_ or merchant, livemode=livemode, url=url, enabled_events=list(enabled_events),
            secret=kwargs.pop("secret", SECRET), **kwargs)

    return make
