"""The double-entry ledger (docs/ledger.md).

Sign convention: an entry's `amount` is signed, in base units of the journal transaction's asset: a debit is
positive, a credit negative. The entries of one journal transaction sum to zero (the database refuses to commit one
that does not), so the balances of all accounts of one asset sum to zero as well: the asset side (money the gateway
holds on-chain: `deposits`, `hot_wallet`, `cold_wallet`, `in_transit`, and the expense `gas_spent`) is positive, the
liability side (what it owes: the merchants' accounts, and the operator's `fee_revenue`) is negative.

An asset is one token on one network (`token` null: the network's native coin, e.g. gas); the network carries the
mode, so test-mode money never meets live money in one account or one journal transaction."""
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from gateway.fields import BaseUnitsField

MAX_HOLD_SECONDS = 90 * 24 * 3600
MAX_FEE_BPS = 10_000


class AccountKind(models.TextChoices):
    # Per merchant (liabilities: credit-normal, their balances are <= 0 when the gateway owes the merchant)
    MERCHANT_PENDING = "merchant_pending", "Merchant pending (holding period)"
    MERCHANT_AVAILABLE = "merchant_available", "Merchant available"
    MERCHANT_RESERVED = "merchant_reserved", "Merchant reserved (on its way out: payouts, refunds)"
    MERCHANT_FEES = "merchant_fees", "Merchant fees owed (charged outside a credit, netted off a payout)"
    # The operator's own
    FEE_REVENUE = "fee_revenue", "Operator fee revenue"
    GAS_SPENT = "gas_spent", "Operator gas spent"
    DEPOSITS = "deposits", "Funds at deposit addresses"
    HOT_WALLET = "hot_wallet", "Hot wallet"
    COLD_WALLET = "cold_wallet", "Cold wallet"
    IN_TRANSIT = "in_transit", "Funds in transit (sent, not final)"


MERCHANT_KINDS = [AccountKind.MERCHANT_PENDING, AccountKind.MERCHANT_AVAILABLE, AccountKind.MERCHANT_RESERVED,
                  AccountKind.MERCHANT_FEES]
WALLET_KINDS = [AccountKind.HOT_WALLET, AccountKind.COLD_WALLET]


class LedgerAccount(models.Model):
    """One account: kind x (merchant, for the merchant kinds) x asset (network, token) x (wallet address, for the hot
    and cold wallet kinds). Its balance is the sum of its entries (LedgerBalance holds it running)."""

    kind = models.CharField(max_length=32, choices=AccountKind.choices)
    merchant = models.ForeignKey("merchants.Merchant", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    network = models.ForeignKey("wallets.Network", on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey("wallets.Token", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                              help_text="Empty: the network's native coin.")
    livemode = models.BooleanField(help_text="The network's mode (kept here for the merchant's balance queries).")
    address = models.CharField(max_length=42, blank=True, default="", help_text="Hot and cold wallets only.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "merchant", "network", "token", "address"],
                                    name="ledger_account_unique", nulls_distinct=False),
            models.CheckConstraint(
                condition=Q(kind__in=MERCHANT_KINDS, merchant__isnull=False)
                | (~Q(kind__in=MERCHANT_KINDS) & Q(merchant__isnull=True)),
                name="ledger_account_merchant_kinds",
            ),
            models.CheckConstraint(condition=Q(kind__in=WALLET_KINDS) | Q(address=""),
                                   name="ledger_account_address_wallets_only"),
        ]
        indexes = [models.Index(fields=["merchant", "livemode"], name="ledger_account_merchant_idx")]

    def __str__(self):
        asset = self.token.currency if self.token_id else "native"
        owner = self.merchant_id or self.address or "operator"
        return f"{self.kind} {owner} {asset}@{self.network_id}"


class JournalTransaction(models.Model):
    """One movement of money in one asset, caused by one source fact: append-only, and (the database checks it at
    COMMIT) at least two entries that sum to zero, all in accounts of this asset. (source_type, source_id, kind) is
    unique, so posting a fact again is a no-op."""

    class Kind(models.TextChoices):
        CHARGE_CREDIT = "charge_credit"
        CHARGE_RELEASE = "charge_release"
        CHARGE_REVERSAL = "charge_reversal"
        ADJUSTMENT = "adjustment"

    network = models.ForeignKey("wallets.Network", on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey("wallets.Token", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    source_type = models.CharField(max_length=32, help_text="charge, sweep, payout ...")
    source_id = models.CharField(max_length=80)
    memo = models.CharField(max_length=200, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source_type", "source_id", "kind"], name="journal_unique_source_fact"),
        ]

    def __str__(self):
        return f"{self.kind} {self.source_type}:{self.source_id}"


class LedgerEntry(models.Model):
    """Debit positive, credit negative (see the module docstring). Append-only."""

    journal = models.ForeignKey(JournalTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries")
    amount = BaseUnitsField(help_text="Base units; debit positive, credit negative.")

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="ledger_entry_not_zero")]
        verbose_name_plural = "ledger entries"


class LedgerBalance(models.Model):
    """The running balance of an account (the sum of its entries), updated in the transaction that posts them;
    `manage.py ledger check` compares it with the entries and `ledger rebuild` recomputes it."""

    account = models.OneToOneField(LedgerAccount, primary_key=True, on_delete=models.PROTECT, related_name="balance")
    balance = BaseUnitsField(default=0)
    updated = models.DateTimeField(auto_now=True)


class LedgerHold(models.Model):
    """A Charge credit still in the merchant's pending account, released to available at `release_at` (queue row:
    deleted in the transaction that posts the release or the reversal)."""

    credit = models.OneToOneField(JournalTransaction, primary_key=True, on_delete=models.PROTECT, related_name="+")
    release_at = models.DateTimeField(db_index=True)


class MerchantTerms(models.Model):
    """A merchant's ledger terms; a merchant without a row has the defaults (no holding period)."""

    merchant = models.OneToOneField("merchants.Merchant", primary_key=True, on_delete=models.CASCADE,
                                    related_name="ledger_terms")
    hold_seconds = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(MAX_HOLD_SECONDS)],
        help_text="How long a credited Charge stays pending before it is available (0: at once; at most 90 days). "
                  "Fixed for each Charge when it is credited.",
    )

    class Meta:
        verbose_name_plural = "merchant terms"
        constraints = [models.CheckConstraint(condition=Q(hold_seconds__lte=MAX_HOLD_SECONDS),
                                              name="merchant_terms_hold_bounds")]


class FeeSchedule(models.Model):
    """The gateway's fee on a merchant's Charges in one token: floor(amount * fee_bps / 10000) + fee_fixed, capped at
    the amount (settlements/fees.py). No row: no fee."""

    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.CASCADE, related_name="+")
    token = models.ForeignKey("wallets.Token", on_delete=models.PROTECT, related_name="+")
    fee_bps = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(MAX_FEE_BPS)],
                                          help_text="Basis points of the amount (0 to 10000).")
    fee_fixed_base_units = BaseUnitsField(default=0, validators=[MinValueValidator(0)],
                                          help_text="Added per Charge, in the token's base units.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["merchant", "token"], name="fee_schedule_unique_token"),
            models.CheckConstraint(condition=Q(fee_bps__lte=MAX_FEE_BPS), name="fee_schedule_bps_bounds"),
            models.CheckConstraint(condition=Q(fee_fixed_base_units__gte=0), name="fee_schedule_fixed_not_negative"),
        ]


def _ladj_id():
    from gateway.ids import new_id

    return new_id("ladj")


class LedgerAdjustment(models.Model):
    """A correction of the ledger by hand, maker-checker: one staff member proposes it with a reason, a second one
    approves it, and only then is it posted (one ADJUSTMENT journal transaction: `debit_account` +amount,
    `credit_account` -amount). The database refuses an approval by the proposer (settlements.adjustments)."""

    class Status(models.TextChoices):
        PROPOSED = "proposed"
        APPROVED = "approved"
        REJECTED = "rejected"

    id = models.CharField(primary_key=True, max_length=40, default=_ladj_id, editable=False)
    debit_account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="+")
    credit_account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="+")
    amount_base_units = BaseUnitsField(help_text="in base units of the accounts' asset; more than 0")
    reason = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROPOSED)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    decision_note = models.TextField(blank=True)
    journal = models.OneToOneField(JournalTransaction, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [("approve_ledgeradjustment", "Can approve or reject a ledger adjustment (not one's own)")]
        constraints = [
            models.CheckConstraint(condition=Q(amount_base_units__gt=0), name="ledger_adjustment_positive"),
            models.CheckConstraint(condition=~Q(debit_account=models.F("credit_account")),
                                   name="ledger_adjustment_two_accounts"),
            models.CheckConstraint(condition=Q(decided_by__isnull=True) | ~Q(decided_by=models.F("proposed_by")),
                                   name="ledger_adjustment_four_eyes"),
            models.CheckConstraint(condition=Q(status="approved", journal__isnull=False, decided_by__isnull=False)
                                   | Q(status="rejected", journal__isnull=True, decided_by__isnull=False)
                                   | Q(status="proposed", journal__isnull=True, decided_by__isnull=True),
                                   name="ledger_adjustment_status_consistent"),
        ]

    def __str__(self):
        return f"{self.id} {self.amount_base_units} ({self.status})"


class MoneyOutPermissions(models.Model):
    """No table, no rows: the staff permissions of money out whose models are still to come (payouts, refunds), so
    the finance role can hold them now (gateway/roles.py)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("approve_payout", "Can approve payouts"), ("approve_refund", "Can approve refunds")]
