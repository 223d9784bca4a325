"""A fault-injecting JSON-RPC proxy on 127.0.0.1 in front of one upstream node, for the RPC client's tests.

    with FaultProxy(anvil_chain.rpc_url, seed=1) as proxy:
        proxy.set_mode("http_503", probability=0.5)
        client = RpcClient([proxy.url, anvil_chain.rpc_url])
        ...
        proxy.counts  # Counter({"pass": 120, "http_503": 80})

Modes (a request gets the fault with `probability`, else it passes through unchanged):

- `pass`: no fault.
- `drop`: close the connection without answering.
- `delay`: wait `delay` seconds, then answer (a client with a shorter timeout gives up first).
- `http_429`, `http_500`, `http_502`, `http_503`: that status with a small non-JSON-RPC body.
- `rpc_error`: a JSON-RPC error object (`rpc_error_code`, -32603 by default; -32005 for rate limiting;
  `rpc_error_message`) for every element of the request, or only for the methods in `rpc_error_methods`.
- `truncate`: the upstream answer cut in half (a 200 with invalid JSON).
- `lag`: the node is `lag_blocks` behind: eth_blockNumber answers head-K, "latest"/"pending" and numbers above it
  in eth_getBlockByNumber answer that block or null, and eth_getLogs stops at head-K ([] beyond): what a lagging
  node does.
- `jump_back`: the same view with `jump_blocks` instead, only on the requests the probability picks, so the head the
  client sees goes back and forth.
- `no_batch`: a node without batch support: a JSON array request gets one -32600 error object.

Only talks to its upstream on 127.0.0.1 / localhost. Deterministic for a given seed and request order.
"""
from __future__ import annotations

import http.client
import json
import random
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

MODES = frozenset({
    "pass", "drop", "delay", "http_429", "http_500", "http_502", "http_503", "rpc_error", "truncate", "lag",
    "jump_back", "no_batch",
})
_OPTIONS = ("delay", "rpc_error_code", "rpc_error_message", "rpc_error_methods", "lag_blocks", "jump_blocks")


class FaultProxy:
    def __init__(self, upstream: str, *, seed: int = 0, mode: str = "pass", probability: float = 1.0,
                 delay: float = 2.0, rpc_error_code: int = -32603, rpc_error_message: str | None = None,
                 rpc_error_methods: frozenset[str] | None = None,
                 lag_blocks: int = 5, jump_blocks: int = 10):
        parts = urlsplit(upstream)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault proxy only fronts a node on this machine")
        self.upstream_host, self.upstream_port = parts.hostname, parts.port or 80
        self.upstream_path = parts.path or "/"
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self.counts: Counter[str] = Counter()
        self.mode = "pass"
        self.probability = 1.0
        self.set_mode(mode, probability=probability)
        self.delay = delay
        self.rpc_error_code = rpc_error_code
        self.rpc_error_message = rpc_error_message
        self.rpc_error_methods = rpc_error_methods
        self.lag_blocks = lag_blocks
        self.jump_blocks = jump_blocks
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------------------------------------

    def set_mode(self, mode: str, *, probability: float | None = None, **options) -> None:
        """Switch the fault (thread-safe); options: delay, rpc_error_code, rpc_error_message, rpc_error_methods,
        lag_blocks, jump_blocks."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {sorted(MODES)}")
        with self._lock:
            self.mode = mode
            if probability is not None:
                self.probability = probability
            for name, value in options.items():
                if name not in _OPTIONS:
                    raise TypeError(f"unknown option {name}")
                setattr(self, name, value)

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the proxy first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            pass

        Handler.proxy = proxy
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="faultproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- the decision, under the lock ------------------------------------------------------------------------

    def _pick(self) -> tuple[str, dict]:
        with self._lock:
            mode = self.mode
            if mode != "pass" and mode != "lag" and self._random.random() >= self.probability:
                mode = "pass"
            if mode == "lag" and self.probability < 1.0 and self._random.random() >= self.probability:
                mode = "pass"
            self.counts[mode] += 1
            options = {name: getattr(self, name) for name in _OPTIONS}
            return mode, options

    # --- upstream --------------------------------------------------------------------------------------------

    def forward(self, body: bytes) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            connection.request("POST", self.upstream_path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def upstream_call(self, method: str, params: list):
        status, data = self.forward(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                                "params": params}).encode())
        return json.loads(data)["result"]

    def forward_item(self, item: dict) -> dict:
        status, data = self.forward(json.dumps(item).encode())
        return json.loads(data)

    def lagged_answer(self, body: bytes, behind: int) -> bytes:
        """The answer of a node whose head is `behind` blocks below the real one."""
        request = json.loads(body)
        items = request if isinstance(request, list) else [request]
        head = int(self.upstream_call("eth_blockNumber", []), 16) - behind
        answers = [self._lagged_item(item, head) for item in items]
        return json.dumps(answers if isinstance(request, list) else answers[0]).encode()

    def _lagged_item(self, item: dict, head: int) -> dict:
        method, params = item.get("method"), list(item.get("params") or [])
        answer = {"jsonrpc": "2.0", "id": item.get("id")}
        if method == "eth_blockNumber":
            answer["result"] = hex(max(head, 0))
            return answer
        if method == "eth_getBlockByNumber" and params:
            tag = params[0]
            if tag in ("latest", "pending"):
                params[0] = hex(max(head, 0))
            elif isinstance(tag, str) and tag.startswith("0x") and int(tag, 16) > head:
                answer["result"] = None
                return answer
        if method == "eth_getLogs" and params and isinstance(params[0], dict):
            flt = dict(params[0])
            from_block = _block_of(flt.get("fromBlock", "latest"), head)
            to_block = _block_of(flt.get("toBlock", "latest"), head)
            if from_block > head:
                answer["result"] = []
                return answer
            flt["toBlock"] = hex(min(to_block, head))
            if flt.get("fromBlock") in (None, "latest", "pending"):
                flt["fromBlock"] = hex(head)
            params = [flt]
        status, data = self.forward(json.dumps({**item, "params": params}).encode())
        upstream = json.loads(data)
        upstream["id"] = item.get("id")
        return upstream


def _block_of(tag, head: int) -> int:
    if isinstance(tag, str) and tag.startswith("0x"):
        return int(tag, 16)
    if tag in ("earliest",):
        return 0
    return head  # latest, pending, safe, finalized: at most the node's own head


class _Handler(BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, like a real provider
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

    def log_message(self, format, *args):  # quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        proxy = self.proxy
        mode, options = proxy._pick()
        try:
            if mode == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if mode == "delay":
                if proxy._stop.wait(options["delay"]):
                    return
                status, data = proxy.forward(body)
                self._send(status, data)
                return
            if mode.startswith("http_"):
                status = int(mode[5:])
                self._send(status, f"{status} fault injected".encode(), "text/plain")
                return
            if mode == "rpc_error":
                request = json.loads(body)
                items = request if isinstance(request, list) else [request]
                code = options["rpc_error_code"]
                message = options["rpc_error_message"] or {
                    -32603: "internal error", -32005: "daily request count exceeded, request rate limited",
                }.get(code, "server error")
                methods = options["rpc_error_methods"]
                answers = [
                    {"jsonrpc": "2.0", "id": i.get("id"), "error": {"code": code, "message": message}}
                    if methods is None or i.get("method") in methods else proxy.forward_item(i)
                    for i in items
                ]
                self._send(200, json.dumps(answers if isinstance(request, list) else answers[0]).encode())
                return
            if mode == "truncate":
                status, data = proxy.forward(body)
                self._send(200, data[: len(data) // 2])
                return
            if mode == "lag":
                self._send(200, proxy.lagged_answer(body, options["lag_blocks"]))
                return
            if mode == "jump_back":
                self._send(200, proxy.lagged_answer(body, options["jump_blocks"]))
                return
            if mode == "no_batch" and body.lstrip().startswith(b"["):
                self._send(200, json.dumps({"jsonrpc": "2.0", "id": None, "error": {
                    "code": -32600, "message": "batch requests are not supported"}}).encode())
                return
            status, data = proxy.forward(body)
            self._send(status, data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
