from celery import shared_task

from . import services


@shared_task(name="settlements.tasks.post_charge_facts", time_limit=120, soft_time_limit=100)
def post_charge_facts() -> int:
    """Sent by payments after a Charge succeeds or is reversed; on beat as a fallback. Safe to run twice and to be
    killed at any line: a queue row goes away only in the transaction that posts it."""
    return services.ledger_post_charge_facts()


@shared_task(name="settlements.tasks.release_pending", time_limit=120, soft_time_limit=100)
def release_pending() -> int:
    """Beat task: move credits whose holding period is over from pending to available."""
    return services.ledger_release_matured()


from .refunds.tasks import advance_refunds  # noqa: E402,F401 (registered with the app's tasks)
