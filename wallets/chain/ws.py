"""A WebSocket `newHeads` subscription that wakes the scanner within milliseconds of a new block.

It only wakes: the scanner still reads blocks and logs over HTTP (`rpc.RpcClient`) and Celery beat polling keeps
scanning while no socket is up. A head may be missed while reconnecting; the scanner never depends on seeing each.
"""
from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from wallets.chain.rpc import mask_url

logger = logging.getLogger(__name__)


def subscribe_new_heads(
    ws_url: str,
    on_head: Callable[[int, str], None],
    stop: threading.Event,
    *,
    on_subscribed: Callable[[], None] | None = None,
    open_timeout: float = 5.0,
    backoff_cap: float = 30.0,
) -> None:
    """Call `on_head(number, hash)` for every new head until `stop` is set; reconnect with exponential backoff
    (0.5 s doubling to `backoff_cap`, with jitter). `on_subscribed` runs after each successful eth_subscribe.
    Blocks the calling thread: run it in a thread of its own. Exceptions of `on_head` are logged, not raised."""
    label = mask_url(ws_url)
    delay = 0.5
    while not stop.is_set():
        try:
            # proxy=None: never route through an environment proxy; small frames only.
            with connect(ws_url, open_timeout=open_timeout, close_timeout=1, proxy=None, max_size=2**22,
                         compression=None) as socket:
                socket.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                        "params": ["newHeads"]}))
                subscription = None
                while subscription is None and not stop.is_set():
                    answer = json.loads(socket.recv(timeout=open_timeout))
                    if answer.get("id") == 1:
                        if answer.get("error"):
                            raise ConnectionError(f"eth_subscribe refused: {answer['error']}")
                        subscription = answer["result"]
                logger.info("newHeads subscription on %s is up", label)
                delay = 0.5
                if on_subscribed is not None:
                    on_subscribed()
                while not stop.is_set():
                    try:
                        message = socket.recv(timeout=0.5)
                    except TimeoutError:
                        continue
                    _dispatch(message, subscription, on_head)
        except (OSError, WebSocketException, ValueError, KeyError, TypeError) as exc:
            if stop.is_set():
                break
            logger.warning("newHeads subscription on %s dropped (%s); reconnecting in %.1fs", label,
                           type(exc).__name__, delay)
        if stop.wait(delay * random.uniform(0.8, 1.2)):
            break
        delay = min(backoff_cap, delay * 2)


def _dispatch(message: str | bytes, subscription: str, on_head: Callable[[int, str], None]) -> None:
    notification = json.loads(message)
    params = notification.get("params") or {}
    if notification.get("method") != "eth_subscription" or params.get("subscription") != subscription:
        return
    header = params.get("result") or {}
    try:
        number, block_hash = int(header["number"], 16), header["hash"].lower()
    except (KeyError, TypeError, ValueError, AttributeError):
        logger.warning("newHeads: a malformed header")
        return
    try:
        on_head(number, block_hash)
    except Exception:
        logger.exception("newHeads: on_head failed for block %d", number)
