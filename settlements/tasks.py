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
