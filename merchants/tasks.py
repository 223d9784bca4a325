from celery import shared_task
from django.conf import settings
from django.utils import timezone

from .models import IdempotencyRecord


@shared_task(name="merchants.tasks.purge_idempotency_records", time_limit=300)
def purge_idempotency_records() -> int:
    """Records older than the replay window are never read again."""
    cutoff = timezone.now() - settings.GATEWAY_IDEMPOTENCY_TTL
    deleted, _ = IdempotencyRecord.objects.filter(created__lt=cutoff).delete()
    return deleted
