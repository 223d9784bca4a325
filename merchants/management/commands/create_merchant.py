import json

from django.core.management.base import BaseCommand, CommandError

from audit.actors import command_actor
from gateway.errors import DomainError
from merchants import services


class Command(BaseCommand):
    help = "Create a merchant (and its portal login when --password is given)."

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--password", default=None)
        parser.add_argument("--json", action="store_true", help="Print a JSON object.")

    def handle(self, *args, email, name, password, **options):
        try:
            merchant = services.merchant_create(email=email, name=name, password=password,
                                                   actor=command_actor("create_merchant"))
        except DomainError as exc:
            raise CommandError(exc.message) from None
        out = {"merchant_id": merchant.id, "email": merchant.email, "name": merchant.name,
               "portal_login": bool(merchant.user_id)}
        self.stdout.write(_dump(out) if options["json"] else f"Created merchant {merchant.id} ({merchant.email})")


def _dump(obj) -> str:
    return json.dumps(obj)
