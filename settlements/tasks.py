from celery import shared_task

from wallets.chain.scanner import rpc_client_or_none
from wallets.models import Network

from . import payouts, services
from .hotcold import services as hotcold_services
from .hotcold.reconcile import wallets_reconcile


@shared_task(name="settlements.tasks.post_charge_facts", time_limit=120, soft_time_limit=100)
def post_charge_facts() -> int:
    """Sent by payments after a Charge succeeds or is reversed; on beat as a fallback. Safe to run twice and to be
    killed at any line: a queue row goes away only in the transaction that posts it."""
    return services.ledger_post_charge_facts()


@shared_task(name="settlements.tasks.release_pending", time_limit=120, soft_time_limit=100)
def release_pending() -> int:
    """Beat task: move credits whose holding period is over from pending to available."""
    return services.ledger_release_matured()


@shared_task(name="settlements.tasks.hot_cold", time_limit=120, soft_time_limit=100)
def hot_cold() -> dict | None:
    """Beat task (docs/money-out.md, "Hot and cold"): settle ended cold transfers, post the gas of the hot wallets'
    ended transactions, send the surplus above each ceiling to cold, raise or resolve floor alerts. Safe to run
    twice and to be killed at any line (each step commits on its own, every posting has a unique source key)."""
    run = hotcold_services.hot_cold_run().as_json()
    return run if any(run.values()) else None


@shared_task(name="settlements.tasks.reconcile_wallets", time_limit=600, soft_time_limit=540)
def reconcile_wallets() -> dict:
    """Beat task (queue "chain", beside reconcile_balances): the hot wallets and cold addresses on the chain against
    the ledger (settlements/hotcold/reconcile.py); differences become BalanceDiscrepancy rows."""
    summaries = {}
    for network in Network.objects.filter(is_active=True).order_by("id"):
        client = rpc_client_or_none(network)
        if client is not None:
            summaries[network.code] = wallets_reconcile(network=network, client=client).as_json()
    return summaries
from .refunds.tasks import advance_refunds  # noqa: E402,F401 (registered with the app's tasks)
@shared_task(name="settlements.tasks.run_sweeps", time_limit=120, soft_time_limit=100, ignore_result=True)
def run_sweeps() -> dict:
    """Beat task (queue `chain`: it reads the chain, holds no key): for each active network, settle the sweeps whose
    transactions ended, then record the batches its policies allow (settlements/sweeps.py). The signer signs them
    (and the 7702 authorizations they ask for) on the `signer` queue; the manager broadcasts them."""
    from wallets.chain.scanner import rpc_client_or_none
    from wallets.models import Network

    from . import sweeps

    done = {}
    for network in Network.objects.filter(is_active=True).order_by("id"):
        client = rpc_client_or_none(network)
        if client is None:
            continue
        summary = sweeps.sweeps_run(network=network, client=client)
        if summary.settled or summary.sent:
            done[network.code] = {"settled": summary.settled, "sent": summary.sent}
    return done
@shared_task(name="settlements.tasks.advance_payouts", time_limit=120, soft_time_limit=100)
def advance_payouts() -> dict:
    """Beat task (and sent after a payout is created): send pending payouts, settle those whose transaction is final.
    Safe to run twice and to be killed at any line: one transaction per payout, every posting keyed by its source."""
    return payouts.payouts_advance()


@shared_task(name="settlements.tasks.run_automatic_payouts", time_limit=300, soft_time_limit=280)
def run_automatic_payouts() -> int:
    """Beat task: the merchants' automatic payouts that are due (each schedule runs once a day or week)."""
    return len(payouts.payouts_run_automatic())
