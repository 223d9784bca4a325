"""`manage.py devchain`: the local chain for development. The work is done by wallets/devchain.py."""
import json
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from wallets import devchain


def _positive_seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise ValueError(value)
    return seconds


class _Stop(Exception):
    pass


def _raise_stop(signum, frame):
    raise _Stop(signal.Signals(signum).name)


class Command(BaseCommand):
    help = (
        "Start anvil on 127.0.0.1 (or reuse the one already there), deploy and fund the test USDT and USDC, make "
        "`devnet` the active test-mode bsc network, print a JSON summary on one line, then run until Ctrl-C."
    )

    def add_arguments(self, parser):
        default_port = urlsplit(settings.GATEWAY_DEVCHAIN_RPC_URL).port or 8545
        parser.add_argument("--port", type=int, default=default_port, help=f"default {default_port}")
        parser.add_argument(
            "--block-time", type=_positive_seconds, default=None, metavar="SECONDS",
            help="mine a block every SECONDS (default: one block per transaction)",
        )
        parser.add_argument(
            "--no-wait", action="store_true", help="exit after printing the summary and leave anvil running",
        )
        parser.add_argument(
            "--state", type=Path, default=None, metavar="FILE",
            help="keep the chain in FILE: loaded when it exists, saved every 5 s and on exit (anvil --state)",
        )

    def handle(self, *args, port, block_time, no_wait, state=None, **options):
        # Before anvil exists, so a SIGTERM at any later line still stops it.
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _raise_stop)

        url = devchain.local_rpc_url(port)
        process = None
        chain_id = devchain.chain_id_at(url)
        if chain_id is not None and chain_id != devchain.CHAIN_ID:
            raise CommandError(f"{url} answers with chain id {chain_id}, not the devchain {devchain.CHAIN_ID}")
        try:
            if chain_id is None:
                process = devchain.start_anvil(port, block_time, state=state)
            elif block_time is not None:
                self.stderr.write(f"devchain: reusing the chain at {url}; --block-time does not change it")
            tokens = devchain.deploy_test_tokens(url)
            network = devchain.register_devnet(url, tokens)
            info = devchain.summary(
                rpc_url=url, tokens=tokens, network=network, block_time=block_time,
                anvil_pid=process.pid if process else None, reused=process is None,
            )
        except (devchain.DevchainError, _Stop, KeyboardInterrupt) as exc:
            if process:
                devchain.stop_anvil(process)
            raise CommandError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            if process:
                devchain.stop_anvil(process)
            raise

        self.stdout.write(json.dumps(info))
        self.stdout.flush()
        owner = f"anvil pid {process.pid}" if process else "reused"
        self.stderr.write(f"devchain: {url} ({owner}); export {network.rpc_env}={url}")
        if no_wait:
            return
        self.stderr.write("devchain: running, Ctrl-C to stop")
        try:
            self._watch(process, url)
        except (_Stop, KeyboardInterrupt):
            pass
        finally:
            if process:
                devchain.stop_anvil(process)

    def _watch(self, process, url):
        """Return when the chain goes away; a signal interrupts the sleep with _Stop / KeyboardInterrupt."""
        while True:
            if process is not None and process.poll() is not None:
                raise CommandError(f"anvil exited with {process.returncode}")
            if process is None and devchain.chain_id_at(url) is None:
                self.stderr.write(f"devchain: the chain at {url} went away")
                return
            time.sleep(1)
