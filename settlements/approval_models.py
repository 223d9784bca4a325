"""Approvals of money out (docs/money-out.md, "Approvals"): the fields a payout and a refund share (who asked, whether
it waits for a staff approval, who decided), and the running totals the per-day limits are checked against.
Registered in the settlements app (imported by settlements/models.py)."""
from django.conf import settings
from django.db import models
from django.db.models import Q


class Approvable(models.Model):
    """Who asked for it (the requester: an API key's merchant login, a portal user, a staff user, or the system with
    no user) and, when it was held by a limit, the staff member who approved or rejected it. The requester never
    decides: the service refuses it and the database too (`approval_four_eyes_constraint`)."""

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+", help_text="The login that asked for it (empty: the system).")
    requester = models.CharField(max_length=140, blank=True, default="",
                                 help_text="Who asked, as the audit trail names it (api_key:..., staff:..., "
                                           "merchant_user:..., system:...).")
    awaiting_approval = models.BooleanField(default=False,
                                            help_text="Held by a limit: not sent until a staff member approves it.")
    approval_reasons = models.JSONField(default=list, blank=True,
                                        help_text="The limits it went over (merchant_per_transaction, ...).")
    approval_decision = models.CharField(max_length=16, blank=True, default="",
                                         choices=[("approved", "approved"), ("rejected", "rejected")])
    approval_decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                            on_delete=models.PROTECT, related_name="+")
    approval_decided_at = models.DateTimeField(null=True, blank=True)
    approval_note = models.TextField(blank=True, default="")

    class Meta:
        abstract = True


def approval_constraints(prefix: str) -> list[models.BaseConstraint]:
    """The database's side of maker-checker: the requester never decides, and a decision names who took it."""
    return [
        models.CheckConstraint(condition=Q(approval_decided_by__isnull=True)
                               | ~Q(approval_decided_by=models.F("requested_by")),
                               name=f"{prefix}_approval_four_eyes"),
        models.CheckConstraint(condition=Q(approval_decision="", approval_decided_by__isnull=True)
                               | (~Q(approval_decision="") & Q(approval_decided_by__isnull=False,
                                                              awaiting_approval=False)),
                               name=f"{prefix}_approval_decided_by"),
    ]


class MoneyOutDailyVolume(models.Model):
    """What went out without an approval (or was approved) in one UTC day, mode and limit currency: per merchant
    (`scope` = its id) or for the whole gateway (`scope` = "*", the operator's limit). Incremented in the creating
    transaction under the row's lock, so concurrent payouts and refunds add up exactly."""

    OPERATOR = "*"

    scope = models.CharField(max_length=32, help_text="A merchant id, or * for the operator's total.")
    livemode = models.BooleanField()
    currency = models.CharField(max_length=3)
    day = models.DateField()
    amount_minor = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "livemode", "currency", "day"],
                                               name="money_out_daily_volume_unique")]

    def __str__(self):
        return f"{self.scope} {self.day} {self.amount_minor} {self.currency}"
