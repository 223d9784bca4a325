"""A pre-started Django process that forks a child per command, for tests that kill -9 many runs of a management
command: a child starts in milliseconds instead of the seconds a fresh `python manage.py` takes on a busy machine,
and is still a process of its own (its own database connection, killed by the kernel, nothing cleaned up).

    python tests/wallets/chain/forker.py      (environment: DJANGO_SETTINGS_MODULE, DATABASE_URL, ...)

stdin, one line a command: `watch --chain devnet --no-ws`, `scan --chain devnet --from-block 5`, `apply` (a loop
of payments.funding.address_activity_process) or `call dotted.path.to.function` (no arguments, imported before the
fork); stdout, one line a child: its pid. Children are reaped by the kernel (SIGCHLD ignored): a pid that is gone has
exited. The parent never opens a database connection (a child must not
share one); it exits when stdin closes."""
import os
import shlex
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))


def _die_with_parent() -> None:
    """Linux: the kernel kills this child when the forker goes (the forker goes when the test closes its stdin, or
    dies), so that no scanner outlives its test."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(1)


def apply_loop() -> None:
    from payments import funding

    while True:
        funding.address_activity_process(limit=20)
        time.sleep(0.02)


def main() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    import payments.funding  # noqa: F401 (imported before the fork: children start at once)
    import wallets.management.commands.scan  # noqa: F401
    import wallets.management.commands.watch  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for line in sys.stdin:
        args = shlex.split(line)
        if not args:
            continue
        if args[0] == "call":  # imported before the fork, so that every child starts at once
            from django.utils.module_loading import import_string

            target = import_string(args[1])
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _die_with_parent()
                sys.stdin.close()
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)  # stdout is the pipe of pids: a command's own output goes nowhere
                sys.stdout = open(1, "w", closefd=False)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                if args[0] == "apply":
                    apply_loop()
                elif args[0] == "call":
                    target()
                else:
                    call_command(*args)
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
