import json

from django.conf import settings
from django.core.management.base import BaseCommand

from merchants import selectors, services
from merchants.models import ApiKey

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-merchant-password"


class Command(BaseCommand):
    help = "Make sure the demo merchant exists and print its portal login, fresh test keys and the URLs."

    def handle(self, *args, **options):
        merchant = selectors.merchant_by_id_or_email(DEMO_EMAIL)
        if merchant is None:
            merchant = services.merchant_create(email=DEMO_EMAIL, name="Demo Shop", password=DEMO_PASSWORD)
        # Keys are shown once: each run rolls the demo's test keys and prints the new ones.
        for key in selectors.api_keys_for_merchant(merchant=merchant, livemode=False).filter(expires_at__isnull=True):
            services.api_key_revoke(api_key=key)
        secret = services.api_key_create(merchant=merchant, livemode=False, name="demo")
        publishable = services.api_key_create(merchant=merchant, livemode=False, kind=ApiKey.Kind.PUBLISHABLE)
        base = settings.GATEWAY_PUBLIC_URL
        self.stdout.write(json.dumps({
            "merchant_id": merchant.id,
            "portal": {"url": f"{base}/portal/", "email": DEMO_EMAIL, "password": DEMO_PASSWORD},
            "secret_key": secret.raw,
            "publishable_key": publishable.raw,
            "api_base": f"{base}/v1",
            "api_docs": f"{base}/api/docs/",
            "admin": f"{base}/admin/",
        }, indent=2))
