import json

from django.core.management.base import BaseCommand, CommandError

from audit.actors import command_actor
from merchants import selectors, services
from merchants.models import ApiKey
from merchants.presenters import KEY_FIELDS, issued_key_json


class Command(BaseCommand):
    help = "Issue an API key for a merchant. The key is printed once and stored only as a hash."

    def add_arguments(self, parser):
        parser.add_argument("--merchant", required=True, help="Merchant id (acct_...) or email")
        parser.add_argument("--mode", choices=["test", "live"], default="test")
        parser.add_argument("--kind", choices=[k.value for k in ApiKey.Kind], default=ApiKey.Kind.SECRET)
        parser.add_argument("--name", default="")
        parser.add_argument("--json", action="store_true", help="Print a JSON object.")

    def handle(self, *args, **options):
        merchant = selectors.merchant_by_id_or_email(options["merchant"])
        if merchant is None:
            raise CommandError(f"No merchant with id or email {options['merchant']!r}")
        issued = services.api_key_create(
            merchant=merchant, kind=options["kind"], livemode=options["mode"] == "live", name=options["name"],
            actor=command_actor("create_api_key"),
        )
        out = issued_key_json(issued.api_key, issued.raw)
        if options["json"]:
            self.stdout.write(json.dumps(out))
        else:
            self.stdout.write(f"{KEY_FIELDS[issued.api_key.kind]}: {issued.raw}\n(shown once; store it now)")
