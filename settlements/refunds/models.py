"""Refunds (docs/money-out.md, "Refunds"): money given back to a customer, for a Charge (full or partial) or an
unmatched deposit, sent from the hot wallet in the token and on the network it came in. Registered in the
settlements app (imported by settlements/models.py)."""
from django.db import models
from django.db.models import Q

from gateway.fields import BaseUnitsField
from gateway.ids import new_id

from ..approval_models import Approvable, approval_constraints


def _re_id():
    return new_id("re")


class Refund(Approvable):
    """Stripe's Refund. `status` moves only through settlements.refunds.services.refund_transition, which writes the
    event in the same transaction. The money: reserved in the ledger when created (`merchant_available` ->
    `merchant_reserved`), sent by one OutgoingTransaction (purpose "refund", source_reference = id), settled when
    that transaction is final, returned when it failed or the refund is canceled."""

    class Status(models.TextChoices):
        REQUIRES_ACTION = "requires_action"  # no destination address yet: the customer's claim page gives one
        PENDING = "pending"  # to be sent, or sent and not final yet
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELED = "canceled"

    class Reason(models.TextChoices):
        DUPLICATE = "duplicate"
        FRAUDULENT = "fraudulent"
        REQUESTED_BY_CUSTOMER = "requested_by_customer"

    id = models.CharField(primary_key=True, max_length=40, default=_re_id, editable=False)
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="+")
    livemode = models.BooleanField()
    charge = models.ForeignKey("payments.Charge", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="refunds")
    payment_intent = models.ForeignKey("payments.PaymentIntent", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="+")
    unmatched_deposit = models.ForeignKey("payments.UnmatchedDeposit", null=True, blank=True,
                                          on_delete=models.PROTECT, related_name="refunds")
    network = models.ForeignKey("wallets.Network", on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey("wallets.Token", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                              help_text="Empty: the network's native coin.")
    amount = models.PositiveBigIntegerField(help_text="Minor units of `currency`.")
    currency = models.CharField(max_length=16)
    amount_base_units = BaseUnitsField(help_text="What is sent, in the token's base units.")
    reason = models.CharField(max_length=32, choices=Reason.choices, blank=True, default="")
    description = models.CharField(max_length=500, blank=True, default="", help_text="Staff's reason (admin).")
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=32, choices=Status.choices)
    destination_address = models.CharField(max_length=42, blank=True, default="", help_text="Lower-case 0x hex.")
    claim_token = models.CharField(max_length=64, unique=True, editable=False,
                                   help_text="The secret of the customer's claim link.")
    receipt_email = models.EmailField(blank=True, default="")
    pending_reason = models.CharField(max_length=64, blank=True, default="",
                                      help_text="Why a pending refund is not sent yet (hot wallet short ...).")
    failure_reason = models.CharField(max_length=64, blank=True, default="")
    outgoing_transaction = models.OneToOneField("wallets.OutgoingTransaction", null=True, blank=True,
                                                on_delete=models.PROTECT, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(charge__isnull=True) ^ Q(unmatched_deposit__isnull=True),
                                   name="refund_one_source"),
            models.CheckConstraint(condition=Q(amount_base_units__gt=0), name="refund_base_units_positive"),
            # An unmatched deposit is given back once (again only after a refund of it failed or was canceled).
            models.UniqueConstraint(fields=["unmatched_deposit"], name="refund_unmatched_deposit_once",
                                    condition=Q(unmatched_deposit__isnull=False)
                                    & ~Q(status__in=["failed", "canceled"])),
            *approval_constraints("refund"),
        ]
        indexes = [
            models.Index(fields=["merchant", "livemode", "-created", "-id"], name="refund_list_idx"),
            models.Index(fields=["status"], name="refund_open_idx", condition=Q(status="pending")),
            models.Index(fields=["created"], name="refund_awaiting_idx", condition=Q(awaiting_approval=True)),
        ]

    def __str__(self):
        return self.id
