import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from audit.actors import command_actor
from gateway.errors import DomainError
from merchants import services
from merchants.models import ApiKey
from merchants.presenters import KEY_FIELDS, issued_key_json

MAX_HOURS = services.API_KEY_ROLL_MAX_GRACE.total_seconds() / 3600


class Command(BaseCommand):
    help = (
        "Replace an API key by a new one of the same kind, mode and permissions (printed once). The old key stops "
        "working at once, or after --expires-in-hours so the merchant can deploy the new one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--key-id", required=True, help="API key id (key_...)")
        parser.add_argument("--expires-in-hours", type=float, default=0.0,
                            help=f"Grace period of the old key, 0 to {MAX_HOURS:g} (default 0: it stops at once).")
        parser.add_argument("--json", action="store_true", help="Print a JSON object.")

    def handle(self, *args, **options):
        hours = options["expires_in_hours"]
        if not 0 <= hours <= MAX_HOURS:
            raise CommandError(f"--expires-in-hours must be between 0 and {MAX_HOURS:g}.")
        key = ApiKey.objects.filter(pk=options["key_id"]).first()
        if key is None:
            raise CommandError(f"No API key {options['key_id']!r}")
        try:
            issued = services.api_key_roll(api_key=key, grace=timedelta(hours=hours),
                                           actor=command_actor("roll_api_key"))
        except DomainError as exc:
            raise CommandError(exc.message) from None
        key.refresh_from_db(fields=["expires_at"])
        out = {**issued_key_json(issued.api_key, issued.raw), "rolled_key_id": key.id,
               "rolled_key_expires_at": int(key.expires_at.timestamp())}
        if options["json"]:
            self.stdout.write(json.dumps(out))
        else:
            self.stdout.write(
                f"{KEY_FIELDS[issued.api_key.kind]}: {issued.raw}\n(shown once; store it now; the old key "
                f"{key.redacted} stops working at {key.expires_at.isoformat()})"
            )
