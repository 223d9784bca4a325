import json

from django.core.management.base import BaseCommand, CommandError

from audit.actors import command_actor
from gateway.errors import ConfigurationError
from merchants import services


class Command(BaseCommand):
    help = (
        "Re-wrap the data key of the application secrets (webhook signing secrets, TOTP seeds) with "
        "GATEWAY_SECRETS_KEK; the old KEK must be in GATEWAY_SECRETS_KEK_PREVIOUS. Prints fingerprints only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="as_json", action="store_true", help="Print a JSON object.")

    def handle(self, *args, as_json=False, **options):
        try:
            result = services.secrets_kek_rotate(actor=command_actor("rotate_secrets_kek"))
        except ConfigurationError as exc:
            raise CommandError(f"{exc.message} [{exc.code}]") from None
        if as_json:
            self.stdout.write(json.dumps({"kek_fingerprint": result.kek_fingerprint, "rewrapped": result.rewrapped,
                                          "unchanged": result.unchanged}))
        else:
            self.stdout.write(
                f"Secrets KEK {result.kek_fingerprint}: {len(result.rewrapped)} data key(s) re-wrapped, "
                f"{len(result.unchanged)} already wrapped by it. GATEWAY_SECRETS_KEK_PREVIOUS can go once every "
                "process runs with the new KEK."
            )
