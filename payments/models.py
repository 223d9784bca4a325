from django.contrib.postgres.indexes import GinIndex
from django.db import models

from gateway.fields import BaseUnitsField
from gateway.ids import new_id


def _pi_id():
    return new_id("pi")


def _evt_id():
    return new_id("evt")


class PaymentIntent(models.Model):
    class Status(models.TextChoices):
        REQUIRES_CONFIRMATION = "requires_confirmation"
        REQUIRES_ACTION = "requires_action"
        PROCESSING = "processing"
        SUCCEEDED = "succeeded"
        CANCELED = "canceled"

    class CancellationReason(models.TextChoices):
        REQUESTED_BY_CUSTOMER = "requested_by_customer"
        ABANDONED = "abandoned"
        DUPLICATE = "duplicate"
        FRAUDULENT = "fraudulent"
        EXPIRED = "expired"

    id = models.CharField(primary_key=True, max_length=40, default=_pi_id, editable=False)
    # db_index=False: pi_list_idx (merchant, livemode, created, id) serves every lookup by merchant
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="payment_intents",
                                 db_index=False)
    livemode = models.BooleanField()
    status = models.CharField(max_length=32, choices=Status.choices)
    amount = models.PositiveBigIntegerField(help_text="Minor units of `currency` (cents).")
    amount_received = models.PositiveBigIntegerField(default=0, help_text="Minor units, final funds only.")
    amount_seen = models.PositiveBigIntegerField(
        default=0, help_text="Minor units seen on-chain, final or not (internal: drives processing/partial events)."
    )
    amount_refunded = models.PositiveBigIntegerField(
        default=0, help_text="Minor units of its Charges' refunds that are not failed or canceled."
    )
    latest_charge = models.ForeignKey(
        "payments.Charge", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    currency = models.CharField(max_length=3)
    description = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    receipt_email = models.EmailField(blank=True, default="")
    return_url = models.URLField(max_length=2048, blank=True, default="")
    client_secret = models.CharField(max_length=100, unique=True, editable=False)
    networks = models.JSONField(default=list, help_text="API network names the customer may pay on.")
    deposit_address = models.OneToOneField(
        "wallets.DepositAddress", null=True, blank=True, on_delete=models.PROTECT, related_name="payment_intent"
    )
    cancellation_reason = models.CharField(max_length=32, choices=CancellationReason.choices, blank=True, default="")
    canceled_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    idempotency_key = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        permissions = [("cancel_paymentintent", "Can cancel a payment intent by hand, with a reason")]
        indexes = [
            models.Index(fields=["merchant", "livemode", "-created", "-id"], name="pi_list_idx"),
            models.Index(
                fields=["expires_at"], name="pi_open_expiry_idx",
                condition=models.Q(status__in=["requires_confirmation", "requires_action"]),
            ),
            # The portal home's "needs attention" counts: open intents are few, so the index is small.
            models.Index(
                fields=["merchant", "livemode"], name="pi_attention_idx",
                condition=models.Q(status__in=["requires_action", "processing"]),
            ),
            # The processing intents, for /metrics' gauge of intents by status (monitoring.selectors): written only
            # when an intent enters or leaves processing, never by creation (the API's hot path).
            models.Index(fields=["created"], name="pi_processing_idx", condition=models.Q(status="processing")),
            # The portal's metadata search (`metadata @> {"order_id": "A-1"}`): a bitmap scan of the few matches
            # instead of walking the merchant's list (docs/portal.md).
            GinIndex(fields=["metadata"], opclasses=["jsonb_path_ops"], name="pi_metadata_idx"),
        ]

    def __str__(self):
        return self.id


class PaymentOption(models.Model):
    """The exact amount due in one token on one network, fixed when the intent is confirmed."""

    payment_intent = models.ForeignKey(PaymentIntent, on_delete=models.CASCADE, related_name="options")
    token = models.ForeignKey("wallets.Token", on_delete=models.PROTECT, related_name="+")
    amount_base_units = BaseUnitsField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["payment_intent", "token"], name="payment_option_unique_token"),
        ]


class Event(models.Model):
    """What happened, with the object's full snapshot; written in the same transaction as the change."""

    id = models.CharField(primary_key=True, max_length=40, default=_evt_id, editable=False)
    # db_index=False: event_list_idx (merchant, livemode, created, id) serves every lookup by merchant
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="events", db_index=False)
    livemode = models.BooleanField()
    type = models.CharField(max_length=64, db_index=True)
    object_id = models.CharField(max_length=40)
    sequence = models.PositiveIntegerField(help_text="Per object: 1, 2, 3 ... in the order of the changes.")
    data = models.JSONField(help_text='{"object": {...}, "previous_attributes": {...}}')
    request_id = models.CharField(max_length=40, blank=True, default="")
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    # Set once the event's webhook deliveries are created (payments.webhooks); until then the partial index finds it.
    fanned_out_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["object_id", "sequence"], name="event_unique_sequence"),
        ]
        indexes = [
            models.Index(fields=["merchant", "livemode", "-created", "-id"], name="event_list_idx"),
            models.Index(fields=["created"], name="event_fan_out_idx", condition=models.Q(fanned_out_at__isnull=True)),
        ]

    def __str__(self):
        return f"{self.id} {self.type}"


def _ch_id():
    return new_id("ch")


def _dep_id():
    return new_id("cdep")


class Charge(models.Model):
    """One on-chain transfer credited to a payment intent, at finality. Never deleted: a reorg that removes its
    transfer (only possible past a broken finality rule) marks it `reversed`."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"
        REVERSED = "reversed"

    id = models.CharField(primary_key=True, max_length=40, default=_ch_id, editable=False)
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="charges")
    livemode = models.BooleanField()
    payment_intent = models.ForeignKey(PaymentIntent, on_delete=models.PROTECT, related_name="charges")
    transfer = models.OneToOneField("wallets.Transfer", on_delete=models.PROTECT, related_name="charge")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUCCEEDED)
    amount = models.PositiveBigIntegerField(help_text="Minor units of `currency` this transfer is worth.")
    amount_refunded = models.PositiveBigIntegerField(
        default=0, help_text="Minor units of its refunds that are not failed or canceled (settlements.refunds)."
    )
    currency = models.CharField(max_length=3)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["merchant", "livemode", "-created", "-id"], name="charge_list_idx")]
        constraints = [models.CheckConstraint(condition=models.Q(amount_refunded__lte=models.F("amount")),
                                              name="charge_refunded_at_most_amount")]

    def __str__(self):
        return self.id


class ChargeDust(models.Model):
    """A final transfer worth less than what makes a new minor unit of the intent (dust: no Charge of its own),
    carried by the next Charge of the same intent in the same token. That Charge's amount counts its fraction of a
    cent; its ledger credit carries its base units (docs/ledger.md). When that Charge is reversed, the dust is free
    to be carried (or charged) again. `reversed` is set, and a ledger fact queued, when
    the dust's block leaves the chain while the Charge stands."""

    charge = models.ForeignKey(Charge, on_delete=models.PROTECT, related_name="dust")
    transfer = models.ForeignKey("wallets.Transfer", on_delete=models.PROTECT, related_name="+")
    reversed = models.BooleanField(default=False)

    class Meta:
        # One succeeded Charge at a time carries a transfer; a later one may carry it again once that one is reversed.
        constraints = [models.UniqueConstraint(fields=["charge", "transfer"], name="charge_dust_unique")]

    def __str__(self):
        return f"{self.charge_id} carries transfer {self.transfer_id}"


class UnmatchedDeposit(models.Model):
    """Funds that reached one of our addresses but pay no open intent in an accepted token and network: never
    invisible, recorded once at finality with a `crypto.deposit.unmatched` event."""

    class Reason(models.TextChoices):
        NO_OPEN_INTENT = "no_open_intent"
        INTENT_CLOSED = "intent_closed"
        UNSUPPORTED_TOKEN = "unsupported_token"
        OTHER_NETWORK = "other_network"
        OTHER_MODE = "other_mode"

    id = models.CharField(primary_key=True, max_length=40, default=_dep_id, editable=False)
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="+")
    livemode = models.BooleanField()
    payment_intent = models.ForeignKey(PaymentIntent, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="unmatched_deposits")
    transfer = models.OneToOneField("wallets.Transfer", on_delete=models.PROTECT, related_name="unmatched_deposit")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    # The refund giving it back, while that refund is not failed or canceled (set and cleared by the refunds, under
    # this row's lock): such a deposit cannot be assigned to an intent (payments.corrections). "" when none.
    refund_reference = models.CharField(max_length=40, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [("assign_unmatcheddeposit", "Can assign an unmatched deposit to a payment intent")]


class WebhookDelivery(models.Model):
    """One event to one endpoint: created when the event fans out, retried until 2xx or given up after 3 days.
    A row due (`status` pending, `next_attempt_at` passed) is what the senders claim (SKIP LOCKED), so a restart
    loses nothing: retries are rows, never timers in a process."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    # db_index=False: the unique (endpoint, event) serves every lookup by endpoint
    endpoint = models.ForeignKey("merchants.WebhookEndpoint", on_delete=models.CASCADE, related_name="deliveries",
                                 db_index=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [("resend_webhookdelivery", "Can resend webhook deliveries")]
        verbose_name_plural = "webhook deliveries"
        constraints = [models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_unique")]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="webhook_delivery_due_idx",
                         condition=models.Q(status="pending")),
        ]

    def __str__(self):
        return f"{self.event_id} -> {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a delivery (append-only): what came back and how long it took."""

    # db_index=False: webhook_attempt_idx (delivery, started_at) serves every lookup by delivery
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_rows", db_index=False)
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    response_body = models.TextField(blank=True, default="", help_text="The first KB of the response.")

    class Meta:
        indexes = [models.Index(fields=["delivery", "-started_at"], name="webhook_attempt_idx")]


class ChargeLedgerOutbox(models.Model):
    """A Charge fact for the ledger (settlements), written in the transaction that creates or reverses the Charge and
    deleted by the ledger in the transaction that posts it (payments/ledger_outbox.py). One row per (charge, kind)."""

    class Kind(models.TextChoices):
        CREDIT = "credit"
        REVERSAL = "reversal"
        DUST_REVERSAL = "dust_reversal"  # one dust transfer the Charge carries left the chain (`dust` names it)

    charge = models.ForeignKey(Charge, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    dust = models.ForeignKey(ChargeDust, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["charge", "kind", "dust"], nulls_distinct=False,
                                               name="charge_ledger_outbox_unique_fact")]


class PaymentDailyVolume(models.Model):
    """The running total of the payment intents a merchant with a daily limit created in one UTC day, mode and
    currency (merchants.Merchant.limit_per_day_minor): incremented in the creation's transaction, whose row lock
    makes concurrent creations of that merchant add up exactly. Merchants without a daily limit have no rows."""

    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.CASCADE, related_name="+")
    livemode = models.BooleanField()
    currency = models.CharField(max_length=3)
    day = models.DateField()
    amount_minor = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["merchant", "livemode", "currency", "day"],
                                               name="payment_daily_volume_unique")]


class DepositAssignment(models.Model):
    """Staff assigned an unmatched deposit's transfer to a payment intent (payments.corrections): from then on
    `funding.address_apply` counts the transfer among that intent's, by the normal rules. One per transfer."""

    transfer = models.OneToOneField("wallets.Transfer", on_delete=models.PROTECT, related_name="assignment")
    payment_intent = models.ForeignKey(PaymentIntent, on_delete=models.PROTECT, related_name="assigned_deposits")
    unmatched_deposit = models.OneToOneField(UnmatchedDeposit, on_delete=models.PROTECT, related_name="assignment")
    reason = models.TextField()
    assigned_by = models.CharField(max_length=200, help_text="the staff member (user name)")
    created = models.DateTimeField(auto_now_add=True)


def _hold_id():
    return new_id("hold")


class HeldDeposit(models.Model):
    """A transfer from an address on the blocklist (wallets.BlockedAddress) to one of our deposit addresses: held for
    review, not credited to the intent, not posted to the ledger, not swept (sweeps take only credited funds), not an
    unmatched deposit. Written by `funding.address_apply` the first time it sees the transfer live and uncredited
    while its sender is blocked; staff decide in admin (payments.corrections): `released` (the transfer then counts by
    the normal rules: Charge, ledger, sweep) or `kept` (frozen on the deposit address; may still be released later)."""

    class Status(models.TextChoices):
        HELD = "held"
        RELEASED = "released"
        KEPT = "kept"

    id = models.CharField(primary_key=True, max_length=40, default=_hold_id, editable=False)
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="+")
    livemode = models.BooleanField()
    payment_intent = models.ForeignKey(PaymentIntent, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="held_deposits")
    transfer = models.OneToOneField("wallets.Transfer", on_delete=models.PROTECT, related_name="held_deposit")
    from_address = models.CharField(max_length=42, help_text="The blocked sender (lower-case 0x hex).")
    blocked_reason = models.TextField(help_text="The blocklist entry's source, reference and reason when held.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.HELD)
    created = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=200, blank=True, default="")
    decision_reason = models.TextField(blank=True, default="")

    class Meta:
        permissions = [("decide_helddeposit", "Can release or keep a deposit held from a blocked sender")]
        indexes = [models.Index(fields=["status"], condition=models.Q(status="held"), name="held_deposit_open_idx")]
        ordering = ["-created"]

    def __str__(self):
        return self.id
