"""manage.py wallet init | import | rotate-kek | status: the operator's handle on the master seed.

Prints only public values (KEK fingerprint, xpub fingerprint, the address at index 0) unless `init --show-mnemonic`
asks for the one-time backup display. `import` reads the mnemonic from stdin or a file, never from the command line,
so it lands neither in the shell history nor in the process list.
"""
import argparse
import getpass
import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from audit.actors import command_actor
from audit.services import audit_record
from gateway.errors import DomainError
from wallets import hd, selectors, services


class Command(BaseCommand):
    help = "Create, import or inspect the master seed, and rotate its key-encryption key (KEK)."
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="{init,import,rotate-kek,status}")

        init = sub.add_parser("init", help="Generate a new master seed and store it encrypted with GATEWAY_KEK.")
        init.add_argument("--words", type=int, default=24, choices=hd.WORD_COUNTS, help="Mnemonic length (24).")
        init.add_argument(
            "--show-mnemonic", action="store_true",
            help="Print the mnemonic once, to write it down as the offline backup. It is never shown again.",
        )
        init.add_argument("--json", dest="as_json", action="store_true", help="Print a JSON object.")

        imp = sub.add_parser(
            "import",
            help="Store an existing BIP39 mnemonic, read from stdin (hidden prompt on a terminal) or --mnemonic-file.",
        )
        imp.add_argument("--mnemonic-file", type=Path, help="A file holding the mnemonic (instead of stdin).")
        # Caught only to refuse it without argparse echoing the words back ("unrecognized arguments: ...").
        imp.add_argument("words_on_command_line", nargs="*", help=argparse.SUPPRESS)
        imp.add_argument("--json", dest="as_json", action="store_true", help="Print a JSON object.")

        rotate = sub.add_parser(
            "rotate-kek",
            help="Rewrap the seed's data key with GATEWAY_KEK (the old KEK must be in GATEWAY_KEK_PREVIOUS).",
        )
        rotate.add_argument("--json", dest="as_json", action="store_true", help="Print a JSON object.")

        status = sub.add_parser("status", help="Fingerprints, dates and address counters; no secret.")
        status.add_argument("--json", dest="as_json", action="store_true", help="Print a JSON object.")

    def handle(self, *args, action, **options):
        handler = {
            "init": self.init, "import": self.import_, "rotate-kek": self.rotate_kek, "status": self.status,
        }[action]
        try:
            if action == "status":
                handler(**options)
            else:
                with transaction.atomic():
                    handler(**options)
                    seed = selectors.master_seed_get()
                    audit_record(actor=command_actor(f"wallet {action}"), action=f"wallet.{action.replace('-', '_')}",
                                 obj=seed, after={"kek_fingerprint": seed.kek_fingerprint})
        except DomainError as exc:
            raise CommandError(f"{exc.message} [{exc.code}]") from None

    # --- subcommands ----------------------------------------------------------------------------------------

    @sensitive_variables()
    def init(self, *, words, show_mnemonic, as_json, **options):
        services.wallet_init(strength_words=words)
        mnemonic = services.wallet_mnemonic_reveal() if show_mnemonic else None
        if show_mnemonic and not as_json:
            self.stderr.write(
                "Write these words down and keep them offline: they are the only backup of every deposit address. "
                "They will not be shown again."
            )
        self._summary("Wallet created.", as_json, mnemonic=mnemonic)

    @sensitive_variables()
    def import_(self, *, mnemonic_file, as_json, words_on_command_line, **options):
        if words_on_command_line:
            raise CommandError(
                "The mnemonic is never taken from the command line (it would stay in the shell history and the "
                "process list): pipe it on stdin or use --mnemonic-file. Consider clearing your shell history."
            )
        if mnemonic_file is not None:
            try:
                mnemonic = mnemonic_file.read_text()
            except OSError as exc:
                raise CommandError(f"Cannot read {mnemonic_file}: {exc.strerror}.") from None
        else:
            stdin = options.get("stdin") or sys.stdin
            if stdin.isatty():
                mnemonic = getpass.getpass("Mnemonic (input hidden): ")
            else:
                mnemonic = stdin.read()
        services.wallet_import(mnemonic=mnemonic)
        self._summary("Wallet imported: check that the address at index 0 is the one you expect.", as_json)

    def rotate_kek(self, *, as_json, **options):
        before = selectors.master_seed_get()
        seed = services.wallet_rotate_kek()
        rotated = before.kek_fingerprint != seed.kek_fingerprint
        if as_json:
            self._json({
                "rotated": rotated, "previous_kek_fingerprint": before.kek_fingerprint,
                "kek_fingerprint": seed.kek_fingerprint,
            })
        elif rotated:
            self.stdout.write(self.style.SUCCESS(
                f"KEK rotated: {before.kek_fingerprint} -> {seed.kek_fingerprint}. "
                f"The old KEK can leave GATEWAY_KEK_PREVIOUS once every process runs with the new GATEWAY_KEK."
            ))
        else:
            self.stdout.write(f"Already wrapped by the current KEK ({seed.kek_fingerprint}); nothing to do.")

    def status(self, *, as_json, **options):
        status = selectors.wallet_status_get()
        if as_json:
            self._json(status.as_json() if status else {"initialized": False})
            return
        if status is None:
            self.stdout.write("No wallet: run `manage.py wallet init` or `manage.py wallet import`.")
            return
        if status.kek_is_current:
            kek_note = "current"
        elif status.kek_is_known:
            kek_note = "a previous KEK: run `manage.py wallet rotate-kek`"
        else:
            kek_note = "UNKNOWN to this process: set GATEWAY_KEK or GATEWAY_KEK_PREVIOUS"
        self.stdout.write("\n".join([
            "Wallet",
            f"  KEK fingerprint:   {status.kek_fingerprint} ({kek_note})",
            f"  xpub fingerprint:  {status.xpub_fingerprint}",
            f"  address #0:        {status.first_address}",
            f"  created:           {status.created.isoformat()}",
            f"  rotated:           {status.rotated.isoformat() if status.rotated else 'never'}",
            f"  addresses issued:  {status.addresses_issued}",
            f"  next index:        {status.next_index}",
        ]))

    # --- output ---------------------------------------------------------------------------------------------

    def _json(self, data: dict) -> None:
        self.stdout.write(json.dumps(data, indent=2))

    @sensitive_variables()
    def _summary(self, title: str, as_json: bool, *, mnemonic: str | None = None) -> None:
        status = selectors.wallet_status_get()
        if as_json:
            data = status.as_json()
            if mnemonic is not None:
                data["mnemonic"] = mnemonic
            self._json(data)
            return
        self.stdout.write(self.style.SUCCESS(title))
        self.stdout.write(f"  KEK fingerprint:   {status.kek_fingerprint}")
        self.stdout.write(f"  xpub fingerprint:  {status.xpub_fingerprint}")
        self.stdout.write(f"  address #0:        {status.first_address}")
        if mnemonic is not None:
            self.stdout.write("")
            self.stdout.write(mnemonic)
