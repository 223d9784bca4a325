"""Every event type the gateway emits, in one place: webhook endpoints subscribe to these (or to `*`), and the
events API filters by them. Lives in `merchants` (the lowest layer that needs it) so that `payments` can import it."""

EVENT_TYPES: tuple[str, ...] = (
    "payment_intent.created",
    "payment_intent.requires_action",
    "payment_intent.processing",
    "payment_intent.partially_funded",
    "payment_intent.succeeded",
    "payment_intent.canceled",
    "payment_intent.reversed",
    "charge.succeeded",
    "charge.reversed",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "crypto.deposit.unmatched",
    "payout.created",
    "payout.paid",
    "payout.failed",
    "payout.canceled",
    "payout.updated",
)

ALL_EVENTS = "*"

# A test event the merchant sends to one endpoint from the portal: delivered to that endpoint only, whatever it
# subscribes to (no endpoint subscribes to it), so that a receiver's URL and signature check can be tried.
TEST_EVENT_TYPE = "webhook_endpoint.test"


def event_type_enabled(enabled_events: list[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to `enabled_events` gets events of `event_type`."""
    return ALL_EVENTS in enabled_events or event_type in enabled_events
