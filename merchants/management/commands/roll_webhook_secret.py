import json
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from audit.actors import command_actor
from merchants import services
from merchants.models import WebhookEndpoint


class Command(BaseCommand):
    help = (
        "Give a webhook endpoint a new signing secret (printed once). The current secret keeps signing beside the new "
        "one for --grace-hours (0: stops at once), so the merchant can deploy the new one without losing a delivery."
    )

    def add_arguments(self, parser):
        parser.add_argument("--endpoint", required=True, help="Webhook endpoint id (we_...)")
        parser.add_argument("--grace-hours", type=float, default=24.0)
        parser.add_argument("--json", action="store_true", help="Print a JSON object.")

    def handle(self, *args, **options):
        if options["grace_hours"] < 0:
            raise CommandError("--grace-hours must be 0 or more.")
        endpoint = WebhookEndpoint.objects.filter(pk=options["endpoint"], deleted=False).first()
        if endpoint is None:
            raise CommandError(f"No webhook endpoint {options['endpoint']!r}")
        endpoint = services.webhook_endpoint_secret_roll(
            endpoint=endpoint, grace=timedelta(hours=options["grace_hours"]),
            actor=command_actor("roll_webhook_secret"),
        )
        expires = endpoint.previous_secret_expires_at
        out = {
            "id": endpoint.id, "merchant_id": endpoint.merchant_id, "livemode": endpoint.livemode,
            "secret": endpoint.secret,
            "previous_secret_expires_at": int(expires.timestamp()) if expires else None,
        }
        if options["json"]:
            self.stdout.write(json.dumps(out))
        else:
            until = expires.isoformat() if expires else "now (no grace period)"
            self.stdout.write(f"secret: {endpoint.secret}\n(shown once; the previous secret stops signing at {until})")
