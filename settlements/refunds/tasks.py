"""The refunds' beat task: thin, safe to run twice and to be killed at any line (one transaction per refund)."""
from celery import shared_task

from . import services


@shared_task(name="settlements.tasks.advance_refunds", time_limit=120, soft_time_limit=100, ignore_result=True)
def advance_refunds() -> dict:
    """Send the pending refunds that can go; settle the ones whose outgoing transaction ended."""
    return services.refunds_advance().as_json()
