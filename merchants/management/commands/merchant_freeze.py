"""`manage.py merchant_freeze --merchant ID_OR_EMAIL --reason TEXT` / `--unfreeze`: the risk control that stops an
account taking payments (merchants.services.merchant_freeze); also Django admin > Merchants, actions."""
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from audit.actors import command_actor
from gateway.errors import DomainError
from merchants import services
from merchants.models import Merchant


class Command(BaseCommand):
    help = "Freeze a merchant (API creation and confirmation refused, checkout closed; webhooks still delivered), " \
           "or unfreeze it."

    def add_arguments(self, parser):
        parser.add_argument("--merchant", required=True, help="Merchant id (acct_...) or email.")
        parser.add_argument("--reason", default="", help="Why (required to freeze).")
        parser.add_argument("--unfreeze", action="store_true", help="Lift the freeze.")

    def handle(self, *args, merchant, reason, unfreeze, **options):
        found = Merchant.objects.filter(Q(pk=merchant) | Q(email__iexact=merchant)).first()
        if found is None:
            raise CommandError(f"No merchant {merchant!r}")
        try:
            if unfreeze:
                services.merchant_unfreeze(merchant=found, actor=command_actor("merchant_freeze --unfreeze"))
            else:
                services.merchant_freeze(merchant=found, reason=reason, actor=command_actor("merchant_freeze"))
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{found.pk} {'unfrozen' if unfreeze else 'frozen'}")
