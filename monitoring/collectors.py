"""The business gauges of `/metrics`, read from the database at scrape time (monitoring.selectors): whatever
process serves the scrape sees the same numbers, and no process can leave a stale gauge behind. The counters and
histograms observed where things happen live in gateway/metrics.py."""
from __future__ import annotations

import logging

from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily

from .selectors import operations_snapshot

logger = logging.getLogger(__name__)


def _gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


class BusinessCollector:
    def collect(self):
        up = _gauge("gateway_metrics_database_up", "1 when the business gauges below could be read from PostgreSQL.")
        try:
            snapshot = operations_snapshot()
        except DatabaseError:
            logger.warning("metrics: the business gauges could not be read", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        intents = _gauge("gateway_payment_intents", "Open payment intents by status (requires_confirmation, "
                         "requires_action, processing); the terminal ones are counted by "
                         "gateway_payment_intent_transitions_total.", ["status"])
        for status, count in snapshot.intents_open.items():
            intents.add_metric([status], count)
        yield intents

        labels = ["network", "livemode"]
        head = _gauge("gateway_chain_head_block", "The node's head when the scanner last looked.", labels)
        cursor = _gauge("gateway_chain_cursor_block", "The last block the scanner processed.", labels)
        final = _gauge("gateway_chain_finalized_block", "The last final block the scanner saw.", labels)
        lag = _gauge("gateway_chain_lag_blocks", "Scanner lag: head minus cursor, as last seen.", labels)
        lag_seconds = _gauge("gateway_chain_lag_seconds", "Scanner lag in seconds of the network's block time.",
                             labels)
        age = _gauge("gateway_chain_cursor_age_seconds", "Seconds since the scanner last wrote its cursor "
                     "(a scanner that stopped: this grows while the lag looks frozen).", labels)
        for row in snapshot.networks:
            if row.cursor is None:
                continue
            key = [row.code, str(row.livemode).lower()]
            head.add_metric(key, row.head)
            cursor.add_metric(key, row.cursor)
            final.add_metric(key, row.finalized)
            lag.add_metric(key, row.lag)
            lag_seconds.add_metric(key, row.lag * row.block_time_ms / 1000)
            age.add_metric(key, max(0.0, (snapshot.taken_at - row.cursor_updated).total_seconds()))
        yield from (head, cursor, final, lag, lag_seconds, age)

        webhooks = _gauge("gateway_webhook_backlog", "Webhook work waiting: deliveries due now (`due`), all "
                          "pending deliveries including those waiting for their retry (`pending`), events not "
                          "fanned out to their endpoints yet (`unfanned_events`).", ["kind"])
        webhooks.add_metric(["due"], snapshot.webhook_due)
        webhooks.add_metric(["pending"], snapshot.webhook_pending)
        webhooks.add_metric(["unfanned_events"], snapshot.events_not_fanned_out)
        yield webhooks
        endpoints = _gauge("gateway_webhook_endpoints", "Webhook endpoints failing (enabled, no success since a "
                           "failure) and disabled.", ["state"])
        endpoints.add_metric(["failing"], snapshot.webhook_endpoints_failing)
        endpoints.add_metric(["disabled"], snapshot.webhook_endpoints_disabled)
        yield endpoints

        queues = _gauge("gateway_queue_rows", "Rows waiting in the gateway's database queues "
                        "(address_activity: transfers for payments to apply; charge_ledger_outbox: Charges for the "
                        "ledger to post).", ["queue"])
        queues.add_metric(["address_activity"], snapshot.address_activity_rows)
        queues.add_metric(["charge_ledger_outbox"], snapshot.ledger_outbox_rows)
        yield queues
        celery = _gauge("gateway_celery_queue_length", "Messages waiting in each Celery queue of the broker.",
                        ["queue"])
        for queue, length in snapshot.celery_queues.items():
            if length is not None:
                celery.add_metric([queue], length)
        yield celery
        outgoing = _gauge("gateway_outgoing_transactions_open", "Outgoing transactions not final yet, by status.",
                          ["status"])
        for status, count in snapshot.outgoing_open.items():
            outgoing.add_metric([status], count)
        yield outgoing
        approvals = _gauge("gateway_approvals_pending", "Money out waiting for a staff decision: payouts and refunds "
                           "held by a limit, ledger adjustments proposed.", ["kind"])
        for kind, count in snapshot.approvals_pending.items():
            approvals.add_metric([kind], count)
        yield approvals

        wallet_labels = ["network", "livemode", "asset", "address"]
        balance = _gauge("gateway_hot_wallet_balance", "Hot wallet balance in the ledger, in whole tokens (float: "
                         "for monitoring only; the ledger holds exact base units).", wallet_labels)
        floor = _gauge("gateway_hot_wallet_floor", "The hot wallet's floor, in whole tokens (when one is set).",
                       wallet_labels)
        for row in snapshot.hot_wallets:
            key = [row.network, str(row.livemode).lower(), row.asset, row.address]
            balance.add_metric(key, row.balance)  # a Decimal of whole tokens: exact until the exposition writes it
            if row.floor is not None:
                floor.add_metric(key, row.floor)
        yield balance
        yield floor

        discrepancies = _gauge("gateway_balance_discrepancies_open", "Reconciliation differences not resolved yet, "
                               "per network.", ["network"])
        for network, count in snapshot.discrepancies_open.items():
            discrepancies.add_metric([network], count)
        yield discrepancies

        held = _gauge("gateway_deposits_held_open", "Deposits from blocked senders waiting for a staff decision.", [])
        held.add_metric([], snapshot.deposits_held)
        yield held
        alerts = _gauge("gateway_issuer_blacklist_alerts_open", "Issuer blacklist alerts on our addresses not "
                        "acknowledged yet.", [])
        alerts.add_metric([], len(snapshot.issuer_blacklist_alerts))
        yield alerts
