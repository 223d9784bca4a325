from celery import shared_task

from . import payouts, services


@shared_task(name="settlements.tasks.post_charge_facts", time_limit=120, soft_time_limit=100)
def post_charge_facts() -> int:
    """Sent by payments after a Charge succeeds or is reversed; on beat as a fallback. Safe to run twice and to be
    killed at any line: a queue row goes away only in the transaction that posts it."""
    return services.ledger_post_charge_facts()


@shared_task(name="settlements.tasks.release_pending", time_limit=120, soft_time_limit=100)
def release_pending() -> int:
    """Beat task: move credits whose holding period is over from pending to available."""
    return services.ledger_release_matured()


@shared_task(name="settlements.tasks.advance_payouts", time_limit=120, soft_time_limit=100)
def advance_payouts() -> dict:
    """Beat task (and sent after a payout is created): send pending payouts, settle those whose transaction is final.
    Safe to run twice and to be killed at any line: one transaction per payout, every posting keyed by its source."""
    return payouts.payouts_advance()


@shared_task(name="settlements.tasks.run_automatic_payouts", time_limit=300, soft_time_limit=280)
def run_automatic_payouts() -> int:
    """Beat task: the merchants' automatic payouts that are due (each schedule runs once a day or week)."""
    return len(payouts.payouts_run_automatic())
