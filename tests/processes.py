"""Helpers of the tests that run the gateway's real processes (`manage.py ...`, `celery -A gateway worker`, a WSGI
server) against this test's database, Redis and anvil.

A subprocess sees the test database through DATABASE_URL (made from the test connection's settings: pytest-django
has already renamed NAME to the test database) and runs with the test settings; it only sees committed rows, so
the tests that use it take `transactional_db`."""
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from wallets.devchain import rpc

REPO = Path(__file__).resolve().parents[1]


def database_url() -> str:
    """The test database as a DATABASE_URL for a subprocess."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def process_env(**overrides: str) -> dict:
    """The environment of a gateway subprocess working on this test's database, with the test settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="gateway.settings.test", DATABASE_URL=database_url(), PYTHONUNBUFFERED="1")
    env.update(overrides)
    return env


def wait_until(predicate: Callable[[], object], *, timeout: float, what: str, interval: float = 0.05):
    """Poll `predicate` until it returns something true (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(interval)
    return result


class Processes:
    """Subprocesses started by a test, each with its own log file; all killed (and reaped) at the end."""

    def __init__(self, log_dir: Path):
        self.log_dir, self.running, self.count = log_dir, [], 0

    def start(self, args: list[str], *, env: dict, name: str) -> tuple[subprocess.Popen, Path]:
        self.count += 1
        log = self.log_dir / f"{self.count:02d}-{name}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(args, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.running.append(process)
        return process, log

    def manage(self, *args: str, env: dict) -> tuple[subprocess.Popen, Path]:
        return self.start([sys.executable, "manage.py", *args], env=env, name=args[0])

    @staticmethod
    def wait_for_line(process: subprocess.Popen, log: Path, text: str, *, timeout: float = 90) -> None:
        """Until `text` shows in the process's log (a fresh interpreter takes seconds on a busy machine)."""
        def seen():
            assert process.poll() is None, f"{process.args} exited with {process.returncode}:\n{log.read_text()}"
            return text in log.read_text()

        wait_until(seen, timeout=timeout, what=f"{text!r} in {log.name}", interval=0.1)

    @staticmethod
    def stop(process: subprocess.Popen, timeout: float = 60) -> int:
        if process.poll() is None:
            process.terminate()
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def stop_all(self) -> None:
        """SIGKILL to each started process's own session (its children too: granian's workers, a prefork pool)."""
        for process in self.running:
            if process.returncode is None:  # not reaped yet: its pid (and group) are still ours
                try:
                    os.killpg(process.pid, signal.SIGKILL)  # start_new_session: the group is the process's own
                except (ProcessLookupError, PermissionError):
                    pass
            if process.poll() is None:
                process.kill()
            process.wait()


def token_send(rpc_url: str, *, token: str, sender: str, to: str, amount: int) -> dict:
    """An ERC-20 transfer from one of anvil's unlocked accounts; returns its receipt once mined."""
    data = "0xa9059cbb" + to[2:].rjust(64, "0") + hex(amount)[2:].rjust(64, "0")
    tx_hash = rpc(rpc_url, "eth_sendTransaction", [{"from": sender, "to": token, "data": data, "gas": hex(100_000)}])
    return wait_until(lambda: rpc(rpc_url, "eth_getTransactionReceipt", [tx_hash]), timeout=30,
                      what=f"{tx_hash} to be mined")


def fork_child(target: Callable[[], object], *, log: Path) -> int:
    """A child process forked from this warm test process (no seconds of imports) that runs `target` with its own
    database connection and exits: 0 when `target` returned, 1 (traceback in `log`) when it raised."""
    from django.db import connections

    connections.close_all()  # the child must not share the parent's database socket
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.setsid()
            target()
            code = 0
        except BaseException:
            import traceback

            log.write_text(traceback.format_exc())
        finally:
            os._exit(code)
    return pid


def child_exit_code(pid: int, *, timeout: float) -> int:
    """Wait (polling: never blocks past `timeout`) for a forked child; its exit code, or -signal."""
    def reaped():
        done, status = os.waitpid(pid, os.WNOHANG)
        return (status,) if done else None

    status = wait_until(reaped, timeout=timeout, what=f"child {pid} to exit", interval=0.1)[0]
    return os.waitstatus_to_exitcode(status)
