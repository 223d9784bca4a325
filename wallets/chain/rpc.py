"""JSON-RPC over HTTP for the chain watcher: several endpoints per chain, failover, health scoring, batching.

The hot path (eth_getLogs of thousands of Transfer logs) goes through one persistent urllib3 connection pool per
endpoint and plain `json.loads`; web3.py stays for building and signing transactions, never here.

Contract with the caller (the scanner):

- `RpcClient.call` / `batch` / the helpers return the decoded `result` of a JSON-RPC answer (raw JSON types: hex
  strings, dicts, lists), or raise. They never return a partial or an empty answer in place of a failure.
- `RpcError` is a JSON-RPC error that is the request's own fault (invalid params, execution reverted, a range
  too wide for the provider...). It is raised at once, without failover. `is_range_error` / `suggested_range` tell
  the scanner to split the eth_getLogs range.
- `RpcUnavailable` means every endpoint failed for this call within the retry budget (transport errors, timeouts,
  HTTP 429/5xx, malformed or truncated JSON, rate-limit and internal JSON-RPC errors, or no endpoint has yet reached
  the block asked for). Treat it as "try again later": nothing was learnt about the chain.

Retry policy. Each call tries the endpoints best first, one attempt per endpoint per round: a due probe (below),
then the available endpoints by health (success EWMA in steps of 0.1, failures fading with a 60 s half-life), then
latency (0.25 s steps), then the order of the URLs; lagging or rewound endpoints after them; endpoints in cool-down
last. The first round always gives every endpoint its chance; between rounds it sleeps an exponential backoff with
jitter (0.1 s, 0.2 s, 0.4 s ... capped at 1 s), and it stops after `max_attempts` attempts (default 3 per endpoint)
or once `retry_budget` seconds (default 3 s) have passed. One attempt is bounded by `timeout`, so the worst case is
about len(urls) * timeout + retry_budget. A failing endpoint is put in cool-down for `cooldown_base` (1 s), doubling
with each consecutive failure, capped at `cooldown_cap` (60 s), +-20 % jitter; when its cool-down ends it gets the
next call as a probe. An endpoint that refuses a method (-32601) is not asked for it again for 10 minutes.

Heads. Every eth_blockNumber answer is remembered per endpoint (`heads()`, `status()`); `block_number()` asks all
endpoints every `head_probe_interval` seconds and marks the ones more than `max_lag_blocks` behind the best as
lagging, and an endpoint whose head goes back by more than `rewind_tolerance` blocks is demoted for
`demote_seconds`. `get_logs` (and `get_block(number)`) send eth_blockNumber in the same batch and only accept the
answer of an endpoint whose head has reached the last block asked for: a lagging node's "no logs" is never taken.

Chain id. A client made with `expected_chain_id` (`for_network` passes the network's) asks every endpoint for
eth_chainId before its first use, and again before its first use after a failure (a node that went down may come back
as another chain: a reset devnet, a testnet). An endpoint on another chain is excluded for good (logged at CRITICAL):
answers from two chains would mix (reorg walk-backs, and a token at the same address credited from the wrong chain).
When every endpoint is excluded, calls raise RpcUnavailable.

Logging never shows an RPC URL's path, query or user info: providers put API keys there (see `mask_url`).
"""
from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import urllib3
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from gateway.metrics import RPC_CALLS, RPC_ERRORS

logger = logging.getLogger(__name__)

T = TypeVar("T")

UNSUPPORTED_MEMORY_SECONDS = 600  # an endpoint that refused a method (-32601) is not asked for it again for so long
BLOCK_TAGS = frozenset({"latest", "finalized", "safe", "earliest", "pending"})


# --- Errors -------------------------------------------------------------------------------------------------------


_HEX_RANGE = re.compile(r"\[\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*\]")
_RANGE_TEXTS = (
    "block range",  # "block range is too wide", "exceed maximum block range: 5000", "up to a 2K block range"
    "more than 10000 results",
    "query returned more than",
    "log response size exceeded",
    "response size exceeded",
    "limit exceeded",
    "too many results",
    "range too large",
    "range is too large",
    "max results",
    "query timeout exceeded",
    "blocks range",
)
# Rate limiting also says "limit exceeded" ("Rate limit exceeded"): that is the endpoint's problem, not the range's.
_RATE_TEXTS = ("rate limit", "rate exceeded", "request rate", "too many requests", "daily request", "credits",
               "quota", "capacity", "throttl")


class RpcError(Exception):
    """A JSON-RPC error answer that is the request's own fault (no failover was tried for it)."""

    def __init__(self, code: int, message: str, data: Any = None, *, method: str = ""):
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        super().__init__(f"{method + ': ' if method else ''}JSON-RPC error {code}: {message}")

    def __reduce__(self):  # picklable (Celery results, multiprocessing) despite the keyword argument
        return _rebuild_rpc_error, (self.code, self.message, self.data, self.method)

    @property
    def is_range_error(self) -> bool:
        """The provider refuses the eth_getLogs range (too many blocks or results): split it and ask again."""
        text = f"{self.message} {self.data if isinstance(self.data, str) else ''}".lower()
        return any(marker in text for marker in _RANGE_TEXTS) and not any(rate in text for rate in _RATE_TEXTS)

    @property
    def suggested_range(self) -> tuple[int, int] | None:
        """The block range (inclusive) the provider suggests, when its message names one: `[0x1, 0x2]`."""
        for text in (self.message, self.data if isinstance(self.data, str) else None):
            if not text:
                continue
            match = _HEX_RANGE.search(text)
            if match:
                low, high = (int(x, 0) for x in match.groups())
                if low <= high:
                    return low, high
        return None

    def max_block_span(self) -> int | None:
        """The largest block count a provider names ("maximum block range: 5000", "up to a 2K block range")."""
        text = f"{self.message} {self.data if isinstance(self.data, str) else ''}"
        match = re.search(r"block range(?: is)?(?: of)?:?\s*(\d+)", text, re.I) or re.search(
            r"up to an? (\d+)(k?) block range", text, re.I
        )
        if not match:
            return None
        number = int(match.group(1))
        if len(match.groups()) > 1 and match.group(2).lower() == "k":
            number *= 1000
        return number


def _rebuild_rpc_error(code, message, data, method):
    return RpcError(code, message, data, method=method)


class RpcUnavailable(Exception):
    """Every endpoint failed for this call within the retry budget: try again later (it is never an empty answer)."""


class _EndpointFault(Exception):
    """This endpoint failed (transport, HTTP status, malformed JSON, a server-side JSON-RPC error): fail over."""


class _Skip(Exception):
    """This endpoint cannot answer this call truthfully (it has not reached the block asked for): try the next one,
    without counting a failure against its health."""


class _Excluded(_Skip):
    """The endpoint serves another chain than the expected one: it is never used."""


class _NotSupported(_Skip):
    """The endpoint refuses the method (-32601, "method not allowed"); another endpoint may serve it."""


# JSON-RPC error codes that are the endpoint's fault, not the request's: fail over to the next endpoint.
_RETRYABLE_CODES = frozenset({
    -32603,  # internal error
    -32005,  # limit exceeded / rate limited (Infura: also "more than 10000 results": checked as a range error first)
    -32029,  # rate limited (some gateways)
    -32090,  # too many requests (Alchemy)
    -32098,  # capacity exceeded
    -32099,  # server error / timeout (some gateways)
    -32010,  # request timed out (some gateways)
    429,
})
_NOT_SUPPORTED_CODES = frozenset({-32601, -32004})
_RETRYABLE_TEXTS = (
    "header not found", "unknown block", "timeout", "timed out", "rate limit", "too many requests", "busy",
    "unavailable", "try again", "capacity", "internal error", "missing trie node", "overloaded", "upstream",
    "backend", "exceeded the quota", "daily request count", "throttl", "limit exceeded", "rate exceeded", "credits",
    "quota",
)
_NOT_SUPPORTED_TEXTS = ("method not found", "not allowed", "not supported", "not available", "is disabled",
                        "does not exist/is not available", "unsupported method")


def _classify_error(error: Any, method: str) -> RpcError:
    """Turn a JSON-RPC error object into RpcError, or raise _EndpointFault / _NotSupported when it is not the
    request's own fault."""
    if not isinstance(error, dict):
        raise _EndpointFault(f"malformed error object for {method}")
    code = error.get("code")
    message = error.get("message")
    if not isinstance(code, int) or isinstance(code, bool):
        code = 0
    message = message if isinstance(message, str) else str(message or "")
    rpc_error = RpcError(code, message, error.get("data"), method=method)
    if method == "eth_getLogs" and rpc_error.is_range_error:
        return rpc_error
    lowered = message.lower()
    if code in _NOT_SUPPORTED_CODES or any(text in lowered for text in _NOT_SUPPORTED_TEXTS):
        raise _NotSupported(f"{method}: JSON-RPC error {code}: {message[:200]}")
    if code in _RETRYABLE_CODES or any(text in lowered for text in _RETRYABLE_TEXTS):
        raise _EndpointFault(f"{method}: JSON-RPC error {code}: {message[:200]}")
    return rpc_error  # -32602 invalid params, 3 / -32000 execution reverted, nonce too low ...


# --- URLs ----------------------------------------------------------------------------------------------------------


def mask_url(url: str) -> str:
    """`https://bsc.example.com/***` for `https://user:pw@bsc.example.com/v3/KEY?apikey=X`: host and port only."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    secret = (parts.path not in ("", "/")) or parts.query or parts.username or parts.password or parts.fragment
    return f"{parts.scheme}://{host}{port}{'/***' if secret else ''}"


def _secrets_of(url: str) -> list[str]:
    """The parts of an RPC URL that may hold a key: the path (and its longer segments), query, user info."""
    parts = urlsplit(url)
    pieces = [parts.path, parts.query, parts.fragment, parts.username, parts.password]
    pieces += [part for part in parts.path.split("/") if len(part) >= 6]
    pieces += [part for part in parts.query.split("&") if part]
    pieces += [unquote(p) for p in pieces if p]
    return sorted({p for p in pieces if p and p not in ("/",) and len(p) >= 3}, key=len, reverse=True)


class _RedactRpcSecrets(logging.Filter):
    """urllib3 logs the request path at DEBUG ('"POST /v3/KEY HTTP/1.1" 200'): mask the RPC URLs' secrets there."""

    def __init__(self):
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(self._scrub(a) if isinstance(a, str) else a for a in args)
        return True

    def _scrub(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


_redact_filter = _RedactRpcSecrets()
logging.getLogger("urllib3.connectionpool").addFilter(_redact_filter)


def rpc_urls(*, code: str, rpc_env: str) -> list[str]:
    """A network's RPC URLs: the comma-separated environment variable named by its `rpc_env`, or
    settings.GATEWAY_DEVCHAIN_RPC_URL for the local devnet; [] when none is configured."""
    urls = [u.strip() for u in os.environ.get(rpc_env, "").split(",") if u.strip()] if rpc_env else []
    if not urls and code == "devnet":
        urls = [settings.GATEWAY_DEVCHAIN_RPC_URL]
    return urls


# --- Endpoints -----------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Endpoint:
    """One RPC URL with its connection pool and its health (read and written under the client's lock)."""

    url: str
    label: str
    pool: urllib3.HTTPConnectionPool = field(repr=False)
    path: str = field(repr=False)
    headers: dict = field(repr=False)
    secrets: list[str] = field(repr=False)
    position: int = 0  # the operator's order of preference (the order of the URLs)
    success: float = 1.0  # EWMA of 1 (success) / 0 (failure), as of scored_at; failures fade with time
    scored_at: float = 0.0
    latency: float = 0.0  # EWMA of the seconds a successful answer took
    failures: int = 0  # consecutive failures
    cooldown_until: float = 0.0
    probing: bool = False  # a call is probing this endpoint after its cool-down
    head: int | None = None  # the last head it reported
    max_head: int | None = None  # the highest head it ever reported
    head_at: float = 0.0
    lagging: bool = False  # behind the best endpoint by more than max_lag_blocks at the last probe
    rewound_until: float = 0.0  # demoted until then: its head went back by more than rewind_tolerance
    batch_ok: bool = True
    unsupported: dict = field(default_factory=dict)  # {method: monotonic time until which it refuses the method}
    calls: int = 0
    errors: int = 0
    chain_checked: bool = False  # its eth_chainId matched the expected one (since its last failure)
    excluded: bool = False  # it serves another chain: never used again
    check_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    calls_metric: Any = field(default=None, repr=False)  # gateway_rpc_calls / _errors of this endpoint (Prometheus)
    errors_metric: Any = field(default=None, repr=False)

    def health(self, now: float, half_life: float) -> float:
        """The success EWMA, with the memory of failures fading (half-life `half_life` seconds) while unused."""
        if self.success >= 1.0 or half_life <= 0:
            return self.success
        return 1.0 - (1.0 - self.success) * 0.5 ** ((now - self.scored_at) / half_life)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class RpcClient:
    """JSON-RPC client for one chain over several HTTP endpoints. Thread-safe; keep one per process and chain
    (`for_network` does), so that connections are kept alive and health is remembered."""

    backoff_base = 0.1
    backoff_cap = 1.0
    max_batch_size = 200  # providers cap batches (often 100-1000 elements); larger batches are split

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = 10.0,
        max_attempts: int | None = None,
        name: str = "",
        retry_budget: float = 3.0,
        cooldown_base: float = 1.0,
        cooldown_cap: float = 60.0,
        max_lag_blocks: int = 5,
        rewind_tolerance: int = 3,
        head_probe_interval: float = 15.0,
        guard_head: bool = True,
        pool_size: int = 4,
        health_half_life: float = 60.0,
        latency_bucket: float = 0.25,
        demote_seconds: float = 30.0,
        expected_chain_id: int | None = None,
    ):
        urls = [u.strip() for u in urls if u and u.strip()]
        if not urls:
            raise ValueError("RpcClient needs at least one URL")
        self.name = name
        self.timeout = timeout
        self.max_attempts = max_attempts if max_attempts is not None else max(3, 3 * len(urls))
        self.retry_budget = retry_budget
        self.cooldown_base = cooldown_base
        self.cooldown_cap = cooldown_cap
        self.max_lag_blocks = max_lag_blocks
        self.rewind_tolerance = rewind_tolerance
        self.head_probe_interval = head_probe_interval
        self.guard_head = guard_head
        self.health_half_life = health_half_life
        self.latency_bucket = latency_bucket
        self.demote_seconds = demote_seconds
        self.expected_chain_id = expected_chain_id  # None: endpoints are not checked (URLs given without a network)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._random = random.Random()
        self._last_probe = float("-inf")
        self.endpoints = [self._make_endpoint(url, pool_size) for url in urls]
        for position, endpoint in enumerate(self.endpoints):
            endpoint.position = position

    def __repr__(self):
        return f"<RpcClient {self.name or ''} {[e.label for e in self.endpoints]}>"

    def _make_endpoint(self, url: str, pool_size: int) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) RPC URL: {mask_url(url)}")
        headers = {"Content-Type": "application/json", "Accept": "application/json", "Connection": "keep-alive"}
        if parts.username is not None:
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        pool_cls = urllib3.HTTPSConnectionPool if parts.scheme == "https" else urllib3.HTTPConnectionPool
        pool = pool_cls(
            parts.hostname, parts.port, maxsize=pool_size, block=False, retries=_NO_RETRIES,
            timeout=urllib3.Timeout(connect=min(self.timeout, 5.0), read=self.timeout),
        )
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        _redact_filter.secrets.update(_secrets_of(url))
        label = mask_url(url)
        return Endpoint(url=url, label=label, pool=pool, path=path, headers=headers, secrets=_secrets_of(url),
                        calls_metric=RPC_CALLS.labels(self.name, label),
                        errors_metric=RPC_ERRORS.labels(self.name, label))

    @classmethod
    def for_network(cls, network, **kwargs) -> RpcClient:
        """The process's client for `network` (a wallets.models.Network): URLs from the environment variable named by
        `network.rpc_env` (comma separated), or settings.GATEWAY_DEVCHAIN_RPC_URL for the local devnet. Cached per
        process, network and URL list; pass keyword arguments only for a fresh, uncached client."""
        urls = rpc_urls(code=network.code, rpc_env=network.rpc_env)
        if not urls:
            raise ImproperlyConfigured(
                f"no RPC URL for network {network.code}: set the environment variable {network.rpc_env or '(rpc_env)'}"
                " to one or more comma-separated URLs"
            )
        chain_id = network.chain_id
        if kwargs:
            return cls(urls, name=network.code, expected_chain_id=chain_id, **kwargs)
        key = (os.getpid(), network.code, chain_id, tuple(urls))
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = cls(urls, name=network.code, expected_chain_id=chain_id)
            return client

    # --- Public calls ------------------------------------------------------------------------------------------

    def call(self, method: str, params: list | None = None) -> Any:
        """The `result` of one JSON-RPC call. Raises RpcError (the request's fault) or RpcUnavailable."""
        params = params or []

        def attempt(endpoint: Endpoint):
            return self._single(endpoint, method, params)

        return self._failover(attempt, method)

    def batch(self, calls: Sequence[tuple[str, list | None]], *, return_errors: bool = False) -> list:
        """The results of `calls` in order, sent as JSON-RPC batches (split into `max_batch_size` pieces).

        Retryable failures of any element (rate limits, internal errors) fail the whole piece over to the next
        endpoint. An element's own error (RpcError) is raised for the first such element, or with
        `return_errors=True` returned in its place. An endpoint that does not answer batches gets the calls one by
        one."""
        calls = [(m, p or []) for m, p in calls]
        results: list = []
        for start in range(0, len(calls), self.max_batch_size):
            piece = calls[start:start + self.max_batch_size]
            results.extend(self._failover(lambda endpoint, piece=piece: self._batch_on(endpoint, piece),
                                          f"batch of {len(piece)} ({piece[0][0]}...)"))
        if not return_errors:
            for result in results:
                if isinstance(result, RpcError):
                    raise result
        return results

    def block_number(self) -> int:
        """The head of the healthiest endpoint that is neither lagging nor rewinding (all endpoints are probed every
        `head_probe_interval` seconds to find out which those are)."""
        if time.monotonic() - self._last_probe >= self.head_probe_interval:
            heads = self.refresh_heads()
            for endpoint in self._ordered():
                head = heads.get(endpoint.label)
                if head is not None and not endpoint.lagging and not self._rewound(endpoint):
                    return head

        def attempt(endpoint: Endpoint) -> int:
            head = _hex_int(self._single(endpoint, "eth_blockNumber", []), "eth_blockNumber")
            self._note_head(endpoint, head)
            if (self._rewound(endpoint) or endpoint.lagging) and self._has_better(endpoint):
                raise _Skip(f"head {head} is behind (lagging or went back)")
            return head

        return self._failover(attempt, "eth_blockNumber")

    def refresh_heads(self) -> dict[str, int | None]:
        """Ask every endpoint that is not cooling down for its head now (one attempt each) and mark the lagging ones;
        {label: head, or None when it did not answer}."""
        heads: dict[str, int | None] = {}
        for endpoint in self.endpoints:
            if endpoint.excluded or endpoint.cooldown_until > time.monotonic():
                heads[endpoint.label] = None
                continue
            try:
                self._check_chain(endpoint)
                head = _hex_int(self._single(endpoint, "eth_blockNumber", []), "eth_blockNumber")
            except _Excluded:
                heads[endpoint.label] = None
                continue
            except (_EndpointFault, _Skip, RpcError) as exc:
                self._failed(endpoint, exc)
                heads[endpoint.label] = None
                continue
            self._succeeded(endpoint, None)
            self._note_head(endpoint, head)
            heads[endpoint.label] = head
        with self._lock:
            self._last_probe = time.monotonic()
            known = [h for h in heads.values() if h is not None]
            best = max(known) if known else None
            for endpoint in self.endpoints:
                head = heads[endpoint.label]
                if head is None:
                    continue  # no news: keep what we knew
                lagging = best is not None and head is not None and best - head > self.max_lag_blocks
                if lagging and not endpoint.lagging:
                    logger.warning("rpc %s: %s lags %d blocks behind the best head %d", self.name, endpoint.label,
                                   best - head, best)
                endpoint.lagging = lagging
        return heads

    def heads(self) -> dict[str, int | None]:
        """The last head each endpoint reported, by masked label (no network call)."""
        with self._lock:
            return {e.label: e.head for e in self.endpoints}

    def status(self) -> list[dict]:
        """Health of every endpoint, for admin pages and logs (masked labels only)."""
        now = time.monotonic()
        with self._lock:
            return [
                {
                    "endpoint": e.label, "head": e.head, "max_head": e.max_head,
                    "health": round(e.health(now, self.health_half_life), 3),
                    "latency_ms": round(e.latency * 1000, 1), "failures": e.failures,
                    "cooldown_s": round(max(0.0, e.cooldown_until - now), 2), "lagging": e.lagging,
                    "rewound": e.rewound_until > now, "batch_ok": e.batch_ok, "calls": e.calls, "errors": e.errors,
                    "excluded": e.excluded,
                }
                for e in self.endpoints
            ]

    def chain_id(self) -> int:
        return self._failover(lambda e: _hex_int(self._single(e, "eth_chainId", []), "eth_chainId"), "eth_chainId")

    def get_block(self, tag_or_number: int | str, full_txs: bool = False) -> dict | None:
        """eth_getBlockByNumber. A number beyond an endpoint's head is asked of another endpoint: None is returned
        only when a non-lagging endpoint says, together with its head, that the block does not exist yet."""
        if isinstance(tag_or_number, str) and tag_or_number not in BLOCK_TAGS:
            raise ValueError(f"unknown block tag {tag_or_number!r}")
        if isinstance(tag_or_number, str):
            def attempt(endpoint: Endpoint):
                block = self._single(endpoint, "eth_getBlockByNumber", [tag_or_number, full_txs])
                if block is not None and not isinstance(block, dict):
                    raise _EndpointFault("eth_getBlockByNumber: not an object")
                if tag_or_number == "latest" and block is not None:
                    self._note_head(endpoint, _hex_int(block.get("number"), "block.number"))
                    if (self._rewound(endpoint) or endpoint.lagging) and self._has_better(endpoint):
                        raise _Skip("latest block is behind (lagging or went back)")
                return block

            return self._failover(attempt, "eth_getBlockByNumber")

        number = int(tag_or_number)

        def attempt_number(endpoint: Endpoint):
            head, block = self._guarded(endpoint, number, ("eth_getBlockByNumber", [hex(number), full_txs]))
            if block is None:
                if head is not None:  # None: guard_head=False, the endpoint's word is taken
                    self._check_missing_block(endpoint, number, head)
                return None
            if not isinstance(block, dict) or _hex_int(block.get("number"), "block.number") != number:
                raise _EndpointFault("eth_getBlockByNumber: wrong block")
            return block

        return self._failover(attempt_number, "eth_getBlockByNumber")

    def get_blocks(self, numbers: Sequence[int], full_txs: bool = False) -> list[dict | None]:
        """eth_getBlockByNumber for many numbers, in order, in batches that also ask eth_blockNumber of the same
        endpoint: a block at or below that head must be there (else the endpoint fails over), and None is taken, as
        with `get_block`, only for a block beyond the head of an endpoint that is not known to lag."""
        size = max(1, self.max_batch_size - 1)
        results: list[dict | None] = []
        for start in range(0, len(numbers), size):
            piece = [int(n) for n in numbers[start:start + size]]
            calls = [("eth_blockNumber", [])] + [("eth_getBlockByNumber", [hex(n), full_txs]) for n in piece]

            def attempt(endpoint: Endpoint, piece=piece, calls=calls) -> list[dict | None]:
                head_answer, *blocks = self._batch_on(endpoint, calls)
                if isinstance(head_answer, RpcError):
                    raise _EndpointFault(f"eth_blockNumber: {head_answer.message}")
                head = _hex_int(head_answer, "eth_blockNumber")
                self._note_head(endpoint, head)
                for number, block in zip(piece, blocks):
                    if isinstance(block, RpcError):
                        raise block
                    if block is None:
                        self._check_missing_block(endpoint, number, head)
                    elif not isinstance(block, dict) or _hex_int(block.get("number"), "block.number") != number:
                        raise _EndpointFault("eth_getBlockByNumber: wrong block")
                return blocks

            results.extend(self._failover(attempt, "eth_getBlockByNumber"))
        return results

    def get_logs(self, from_block: int, to_block: int, addresses: Sequence[str] | None, topics: list) -> list[dict]:
        """eth_getLogs over [from_block, to_block] (inclusive) as raw dicts. The answering endpoint must show, in the
        same batch, a head >= to_block; an endpoint that has not reached to_block is not asked (its "no logs" is not
        the truth), so this raises RpcUnavailable until some endpoint has. A provider's range refusal is raised as
        RpcError (`is_range_error`, `suggested_range`)."""
        if from_block > to_block:
            raise ValueError(f"from_block {from_block} > to_block {to_block}")
        flt: dict[str, Any] = {"fromBlock": hex(from_block), "toBlock": hex(to_block)}
        if topics:
            flt["topics"] = topics
        if addresses:
            flt["address"] = list(addresses)

        def attempt(endpoint: Endpoint) -> list[dict]:
            _, logs = self._guarded(endpoint, to_block, ("eth_getLogs", [flt]))
            if not isinstance(logs, list):
                raise _EndpointFault("eth_getLogs: not a list")
            return logs

        return self._failover(attempt, "eth_getLogs")

    def close(self) -> None:
        for endpoint in self.endpoints:
            endpoint.pool.close()

    # --- Failover loop ---------------------------------------------------------------------------------------

    def _failover(self, attempt: Callable[[Endpoint], T], what: str) -> T:
        started = time.monotonic()
        attempts = 0
        problems: list[str] = []
        refused: dict[str, str] = {}  # {endpoint label: why} for endpoints that refuse the method
        for round_number in itertools.count():
            for endpoint in self._ordered(claim_probe=True):
                if attempts >= self.max_attempts:
                    break
                if round_number and time.monotonic() - started > self.retry_budget:
                    break  # every endpoint had its chance in the first round; the budget bounds the rest
                if endpoint.unsupported.get(what, 0.0) > time.monotonic():
                    refused.setdefault(endpoint.label, f"refuses {what}")
                    continue
                attempts += 1
                began = time.monotonic()
                try:
                    self._check_chain(endpoint)
                    result = attempt(endpoint)
                except RpcError:
                    self._succeeded(endpoint, time.monotonic() - began)  # the endpoint answered properly
                    raise
                except _NotSupported as exc:
                    self._release_probe(endpoint)
                    with self._lock:
                        endpoint.unsupported[what] = time.monotonic() + UNSUPPORTED_MEMORY_SECONDS
                    logger.warning("rpc %s: %s refuses %s; asking the others for %ds", self.name, endpoint.label,
                                   what, UNSUPPORTED_MEMORY_SECONDS)
                    refused[endpoint.label] = endpoint.scrub(str(exc))
                    continue
                except _Skip as exc:
                    self._release_probe(endpoint)
                    problems.append(f"{endpoint.label}: {endpoint.scrub(str(exc))}")
                    continue
                except (_EndpointFault, KeyError, TypeError, AttributeError, ValueError) as exc:
                    self._failed(endpoint, exc)  # the last four: a malformed answer our parsing tripped over
                    problems.append(f"{endpoint.label}: {endpoint.scrub(str(exc))}")
                    continue
                self._succeeded(endpoint, time.monotonic() - began)
                return result
            usable = sum(1 for e in self.endpoints if not e.excluded)
            if not usable:
                problems.append(f"every endpoint serves another chain than {self.expected_chain_id}")
                break
            if len(refused) >= usable:
                summary = "; ".join(f"{label}: {why}" for label, why in refused.items())
                raise RpcError(-32601, f"no endpoint supports {what}: {summary}", method=what)
            if attempts >= self.max_attempts or (round_number and time.monotonic() - started > self.retry_budget):
                break
            delay = min(self.backoff_cap, self.backoff_base * 2**round_number) * self._random.uniform(0.8, 1.2)
            if time.monotonic() + delay - started > self.retry_budget:
                break
            time.sleep(delay)
        summary = "; ".join((problems + [f"{label}: {why}" for label, why in refused.items()])[-6:])
        raise RpcUnavailable(
            f"rpc {self.name}: {what} failed on every endpoint after {attempts} attempts in "
            f"{time.monotonic() - started:.2f}s ({summary})"
        )

    def _ordered(self, *, claim_probe: bool = False) -> list[Endpoint]:
        """Endpoints to try, best first: a due probe; the available ones by health; demoted (lagging, rewound) ones;
        then the ones in cool-down, soonest back first."""
        now = time.monotonic()
        with self._lock:
            probes, ready, demoted, cooling = [], [], [], []
            for e in self.endpoints:
                if e.excluded:
                    continue
                if e.cooldown_until > now:
                    cooling.append(e)
                elif e.failures and not e.probing:
                    probes.append(e)
                elif e.lagging or e.rewound_until > now:
                    demoted.append(e)
                else:
                    ready.append(e)
            ready.sort(key=lambda e: self._rank(e, now))
            demoted.sort(key=lambda e: self._rank(e, now))
            cooling.sort(key=lambda e: e.cooldown_until)
            if claim_probe and probes:
                probes = probes[:1]
                probes[0].probing = True
                others = [e for e in self.endpoints
                          if e.failures and not e.probing and e.cooldown_until <= now and not e.excluded]
                demoted.extend(others)
            return probes + ready + demoted + cooling

    def _rank(self, endpoint: Endpoint, now: float) -> tuple:
        """Healthier first (in steps of 0.1), then faster (in steps of `latency_bucket` seconds), then the order of
        the URLs: similar endpoints are used in the operator's order of preference."""
        return (-round(endpoint.health(now, self.health_half_life), 1), int(endpoint.latency / self.latency_bucket),
                endpoint.position)

    def _release_probe(self, endpoint: Endpoint) -> None:
        with self._lock:
            endpoint.probing = False

    def _succeeded(self, endpoint: Endpoint, seconds: float | None) -> None:
        endpoint.calls_metric.inc()
        with self._lock:
            endpoint.calls += 1
            now = time.monotonic()
            endpoint.success = 0.8 * endpoint.health(now, self.health_half_life) + 0.2
            endpoint.scored_at = now
            if seconds is not None:
                endpoint.latency = seconds if endpoint.latency == 0 else 0.8 * endpoint.latency + 0.2 * seconds
            if endpoint.failures:
                logger.info("rpc %s: %s is answering again", self.name, endpoint.label)
            endpoint.failures = 0
            endpoint.cooldown_until = 0.0
            endpoint.probing = False

    def _failed(self, endpoint: Endpoint, exc: Exception) -> None:
        endpoint.calls_metric.inc()
        endpoint.errors_metric.inc()
        with self._lock:
            endpoint.calls += 1
            endpoint.errors += 1
            now = time.monotonic()
            endpoint.success = 0.8 * endpoint.health(now, self.health_half_life)
            endpoint.scored_at = now
            endpoint.failures += 1
            endpoint.probing = False
            endpoint.chain_checked = False  # it may come back as another chain (a reset devnet): check it again
            cooldown = min(self.cooldown_cap, self.cooldown_base * 2 ** (endpoint.failures - 1))
            cooldown *= self._random.uniform(0.8, 1.2)
            endpoint.cooldown_until = time.monotonic() + cooldown
            failures = endpoint.failures
        log = logger.warning if failures in (1, 2) or failures % 10 == 0 else logger.debug
        what = str(exc) if isinstance(exc, _EndpointFault) else f"{type(exc).__name__}: {exc}"
        log("rpc %s: %s failed (%s); %d in a row, cool-down %.2fs", self.name, endpoint.label,
            endpoint.scrub(what)[:300], failures, cooldown)

    # --- Chain id ------------------------------------------------------------------------------------------------

    def _check_chain(self, endpoint: Endpoint) -> None:
        """Make sure `endpoint` serves the expected chain before it is used: eth_chainId once (per process, and again
        after a failure). Raises _Excluded for an endpoint on another chain (for good), _EndpointFault when the check
        could not be made. One thread checks an endpoint at a time; the others wait for its verdict."""
        if self.expected_chain_id is None or (endpoint.chain_checked and not endpoint.excluded):
            return
        with endpoint.check_lock:
            if endpoint.excluded:
                raise _Excluded(f"serves another chain than {self.expected_chain_id}")
            if endpoint.chain_checked:
                return
            try:
                answer = self._single(endpoint, "eth_chainId", [])
            except RpcError as exc:  # the endpoint cannot tell its chain: not usable now
                raise _EndpointFault(f"eth_chainId: JSON-RPC error {exc.code}: {exc.message[:200]}") from None
            except _Skip as exc:
                raise _EndpointFault(f"eth_chainId: {exc}") from None
            chain_id = _hex_int(answer, "eth_chainId")
            if chain_id != self.expected_chain_id:
                with self._lock:
                    endpoint.excluded = True
                    endpoint.head = endpoint.max_head = None  # its heads belong to another chain
                    endpoint.lagging = False
                logger.critical("rpc %s: %s serves chain id %d, not %d: excluded for good (fix its URL)", self.name,
                                endpoint.label, chain_id, self.expected_chain_id)
                raise _Excluded(f"serves chain id {chain_id}, not {self.expected_chain_id}")
            endpoint.chain_checked = True

    # --- Heads -----------------------------------------------------------------------------------------------

    def _note_head(self, endpoint: Endpoint, head: int) -> None:
        now = time.monotonic()
        with self._lock:
            endpoint.head = head
            endpoint.head_at = now
            if endpoint.rewound_until and now >= endpoint.rewound_until:
                endpoint.rewound_until = 0.0  # the demotion served its time: accept the endpoint's view again
                endpoint.max_head = head
            if endpoint.max_head is not None and head < endpoint.max_head - self.rewind_tolerance:
                if not endpoint.rewound_until:
                    logger.warning("rpc %s: %s head went back from %d to %d", self.name, endpoint.label,
                                   endpoint.max_head, head)
                    endpoint.rewound_until = now + self.demote_seconds
            elif endpoint.max_head is None or head >= endpoint.max_head:
                endpoint.max_head = head
                endpoint.rewound_until = 0.0
            best = max((e.head for e in self.endpoints if e.head is not None), default=head)
            if endpoint.lagging and best - head <= self.max_lag_blocks:
                endpoint.lagging = False

    def _check_missing_block(self, endpoint: Endpoint, number: int, head: int) -> None:
        """An endpoint with head `head` answered null for block `number`: raise unless that means "not mined yet"."""
        if number <= head:
            raise _EndpointFault(f"block {number} missing below its own head {head}")
        with self._lock:
            best = max((e.head for e in self.endpoints if e.head is not None), default=head)
        if number <= best:
            raise _Skip(f"block {number} missing: head {head} is behind the best known head {best}")
        if (self._rewound(endpoint) or endpoint.lagging) and self._has_better(endpoint):
            raise _Skip(f"block {number} missing (head {head}, lagging or went back)")

    def _has_better(self, endpoint: Endpoint) -> bool:
        """Another endpoint is available that is neither cooling down, lagging nor rewound."""
        now = time.monotonic()
        with self._lock:
            return any(
                e is not endpoint and e.cooldown_until <= now and not e.lagging and e.rewound_until <= now
                and not e.excluded for e in self.endpoints
            )

    def _rewound(self, endpoint: Endpoint) -> bool:
        return endpoint.rewound_until > time.monotonic()

    def _guarded(self, endpoint: Endpoint, needed: int, call: tuple[str, list]) -> tuple[int | None, Any]:
        """(head, result) of `call` on this endpoint, asked in one batch after eth_blockNumber. For eth_getLogs, raises
        _Skip when the endpoint's head is below `needed` (it has not seen those blocks). Head None: guard disabled."""
        if not self.guard_head:
            return None, self._single(endpoint, *call)
        head_answer, result = self._batch_on(endpoint, [("eth_blockNumber", []), call])
        if isinstance(head_answer, RpcError):
            raise _EndpointFault(f"eth_blockNumber: {head_answer.message}")
        head = _hex_int(head_answer, "eth_blockNumber")
        self._note_head(endpoint, head)
        if isinstance(result, RpcError):
            raise result
        if head < needed and call[0] == "eth_getLogs":
            with self._lock:
                best = max((e.head for e in self.endpoints if e.head is not None), default=head)
                if best - head > self.max_lag_blocks:
                    endpoint.lagging = True
            raise _Skip(f"head {head} is below block {needed}")
        return head, result

    # --- Wire ------------------------------------------------------------------------------------------------

    def _post(self, endpoint: Endpoint, body: bytes) -> Any:
        """POST body, return the parsed JSON; _EndpointFault on transport errors, bad statuses and bad JSON."""
        try:
            response = endpoint.pool.urlopen(
                "POST", endpoint.path, body=body, headers=endpoint.headers, retries=_NO_RETRIES, redirect=False,
                preload_content=True, assert_same_host=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _EndpointFault(f"{type(exc).__name__}: {exc}") from None
        status = response.status
        if status == 429 or status >= 500:
            raise _EndpointFault(f"HTTP {status}")
        data = response.data
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        if parsed is None:
            raise _EndpointFault(f"HTTP {status}, not JSON ({len(data)} bytes)")
        if status != 200 and not _looks_like_jsonrpc(parsed):
            raise _EndpointFault(f"HTTP {status}")
        return parsed

    def _single(self, endpoint: Endpoint, method: str, params: list) -> Any:
        request_id = next(self._ids)
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params},
                          separators=(",", ":")).encode()
        answer = self._post(endpoint, body)
        if isinstance(answer, list) and len(answer) == 1:
            answer = answer[0]
        if not isinstance(answer, dict):
            raise _EndpointFault(f"{method}: answer is not an object")
        if answer.get("id") != request_id:
            raise _EndpointFault(f"{method}: answer id {answer.get('id')!r} is not {request_id}")
        if answer.get("error") is not None:
            raise _classify_error(answer["error"], method)
        if "result" not in answer:
            raise _EndpointFault(f"{method}: answer has neither result nor error")
        return answer["result"]

    def _batch_on(self, endpoint: Endpoint, calls: list[tuple[str, list]]) -> list:
        """Results of `calls` from this endpoint, RpcError instances in place of the elements' own errors."""
        if not endpoint.batch_ok:
            return self._sequential_on(endpoint, calls)
        ids = [next(self._ids) for _ in calls]
        body = json.dumps(
            [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in zip(ids, calls)],
            separators=(",", ":"),
        ).encode()
        answer = self._post(endpoint, body)
        if isinstance(answer, dict):
            # A single error object for the whole batch: no batch support (or a whole-request error).
            error = answer.get("error")
            if isinstance(error, dict):
                try:
                    _classify_error(error, "batch")
                except _NotSupported:
                    pass
                except _EndpointFault:
                    raise
                logger.info("rpc %s: %s does not answer batches; sending calls one by one", self.name,
                            endpoint.label)
                with self._lock:
                    endpoint.batch_ok = False
                return self._sequential_on(endpoint, calls)
            raise _EndpointFault("batch answer is not a list")
        if not isinstance(answer, list):
            raise _EndpointFault("batch answer is not a list")
        by_id = {}
        for item in answer:
            if isinstance(item, dict) and "id" in item:
                by_id[item["id"]] = item
        results = []
        for request_id, (method, _) in zip(ids, calls):
            item = by_id.get(request_id)
            if item is None:
                raise _EndpointFault(f"batch answer misses id {request_id} ({method})")
            if item.get("error") is not None:
                results.append(_classify_error(item["error"], method))  # raises when retryable
            elif "result" in item:
                results.append(item["result"])
            else:
                raise _EndpointFault(f"{method}: batch element has neither result nor error")
        return results

    def _sequential_on(self, endpoint: Endpoint, calls: list[tuple[str, list]]) -> list:
        results = []
        for method, params in calls:
            try:
                results.append(self._single(endpoint, method, params))
            except RpcError as exc:
                results.append(exc)
        return results


def _looks_like_jsonrpc(parsed: Any) -> bool:
    if isinstance(parsed, list):
        return bool(parsed) and all(isinstance(i, dict) and "jsonrpc" in i for i in parsed)
    return isinstance(parsed, dict) and "jsonrpc" in parsed and ("result" in parsed or "error" in parsed)


def _hex_int(value: Any, what: str) -> int:
    if isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise _EndpointFault(f"{what}: not a hex quantity: {str(value)[:40]!r}")


_NO_RETRIES = urllib3.Retry(total=False, redirect=False)  # failover is ours, not urllib3's
_clients: dict[tuple, RpcClient] = {}
_clients_lock = threading.Lock()
