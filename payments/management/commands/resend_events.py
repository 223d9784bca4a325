"""`manage.py resend_events --endpoint we_... --since 2026-11-30T00:00:00Z [--json]`: resend in bulk.

Every event of the endpoint's merchant and mode since that time that the endpoint wants: deliveries that exist are
set pending and due now, missing ones are created. The senders do the rest."""
import datetime as dt
import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.actors import command_actor
from audit.services import audit_record
from merchants.models import WebhookEndpoint
from payments.webhooks.services import deliveries_resend_since


class Command(BaseCommand):
    help = "Resend the events since a time to one webhook endpoint."

    def add_arguments(self, parser):
        parser.add_argument("--endpoint", required=True, metavar="ID")
        parser.add_argument("--since", required=True, metavar="ISO_TIME", help="e.g. 2026-11-30T12:00:00Z")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the result as JSON")

    def handle(self, *args, endpoint, since, as_json=False, **options):
        since_at = parse_datetime(since)
        if since_at is None:
            raise CommandError(f"--since: not an ISO 8601 time: {since!r}")
        if timezone.is_naive(since_at):
            since_at = timezone.make_aware(since_at, dt.timezone.utc)
        target = WebhookEndpoint.objects.filter(id=endpoint, deleted=False).first()
        if target is None:
            raise CommandError(f"--endpoint: no webhook endpoint {endpoint!r}")
        if target.status != WebhookEndpoint.Status.ENABLED:
            raise CommandError(f"--endpoint: {endpoint} is disabled; enable it first")
        with transaction.atomic():
            reset, created = deliveries_resend_since(endpoint=target, since=since_at, now=timezone.now())
            audit_record(actor=command_actor("resend_events"), action="webhook_endpoint.resend_events", obj=target,
                         after={"since": since_at.isoformat(), "reset": reset, "created": created})
        result = {"endpoint": target.id, "since": since_at.isoformat(), "reset": reset, "created": created}
        self.stdout.write(json.dumps(result) if as_json else f"{reset + created} deliveries due now "
                                                       f"({reset} sent again, {created} new) to {target.id}")

