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
from gateway.ids import new_id

MAX_HOLD_SECONDS = 90 * 24 * 3600
MAX_FEE_BPS = 10_000
MAX_SWEEP_BATCH = 500


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
    OPERATOR_FUNDING = "operator_funding", "Operator funding (top-ups of the hot wallet from outside)"


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
        # Hot and cold (settlements/hotcold/): the surplus sent to cold, final, reversed; gas of the hot wallet's
        # transactions; operator top-ups of the hot wallet.
        COLD_SEND = "cold_send"
        COLD_FINAL = "cold_final"
        COLD_REVERSAL = "cold_reversal"
        GAS_SPENT = "gas_spent"
        HOT_TOPUP = "hot_topup"
        # settlements.refunds (docs/money-out.md): reserve at create, send, settle at final, return on failure/cancel
        REFUND_RESERVE = "refund_reserve"  # merchant_available -> merchant_reserved
        REFUND_UNMATCHED_HOLD = "refund_unmatched_hold"  # an unmatched deposit: deposits -> merchant_reserved
        REFUND_SEND = "refund_send"  # Dr in_transit, Cr hot_wallet
        REFUND_SETTLE = "refund_settle"  # Dr merchant_reserved, Cr in_transit
        REFUND_SEND_REVERSAL = "refund_send_reversal"  # failed / cancelled send: Dr hot_wallet, Cr in_transit
        REFUND_RELEASE = "refund_release"  # reserved back to available (or to deposits for an unmatched deposit)
        SWEEP_SEND = "sweep_send"  # Dr in_transit, Cr deposits: in the transaction that records the sweep
        SWEEP_SETTLE = "sweep_settle"  # Dr hot_wallet, Cr in_transit: what the final receipt moved
        SWEEP_REVERSAL = "sweep_reversal"  # Dr deposits, Cr in_transit: what it did not move (skipped, reverted)
        SWEEP_TOPUP = "sweep_topup"  # non-7702 fallback, native coin: Dr gas_spent, Cr hot_wallet (the top-ups)
        # Payouts (settlements/payouts.py, docs/money-out.md); source (payout, po_...)
        PAYOUT_RESERVE = "payout_reserve"  # merchant available -> reserved, when the payout is created
        PAYOUT_SEND = "payout_send"  # in_transit <- hot_wallet, with the outgoing transaction
        PAYOUT_SETTLE = "payout_settle"  # reserved -> in_transit: the transfer is final, the liability settled
        PAYOUT_SEND_REVERSAL = "payout_send_reversal"  # hot_wallet <- in_transit: the send failed / was cancelled
        PAYOUT_FAILURE = "payout_failure"  # reserved -> available: a payout that failed gives the money back
        PAYOUT_CANCEL = "payout_cancel"  # reserved -> available: a pending payout canceled by the merchant

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


# Hot and cold (settlements/hotcold/), registered in this app.
from .hotcold.models import (  # noqa: E402,F401
    ColdTransfer,
    ColdTransferEvent,
    HotColdSetting,
    HotWalletAlert,
    HotWalletTopup,
)
from .approval_models import Approvable, MoneyOutDailyVolume, approval_constraints  # noqa: E402,F401
from .refunds.models import Refund  # noqa: E402,F401 (registered in this app)
# Sweeps (docs/money-out.md, "Sweeps") ---------------------------------------------------------------------------


class SweepPolicy(models.Model):
    """When the deposit addresses of one network x token are swept to the hot wallet (admin-editable). No row (or
    not active): that token is not swept."""

    network = models.ForeignKey("wallets.Network", on_delete=models.CASCADE, related_name="+")
    token = models.ForeignKey("wallets.Token", on_delete=models.CASCADE, related_name="+")
    is_active = models.BooleanField(default=True)
    min_amount_base_units = BaseUnitsField(
        default=0, validators=[MinValueValidator(0)],
        help_text="An address is swept once it holds at least this much (worth the gas), in base units.")
    max_gas_price_wei = BaseUnitsField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="No sweep is sent while the network's gas price (base fee + tip) is above this; empty: no ceiling.")
    batch_window_seconds = models.PositiveIntegerField(
        default=60, help_text="A batch smaller than the maximum waits until its oldest deposit is this old.")
    max_batch_size = models.PositiveIntegerField(
        default=100, validators=[MinValueValidator(1), MaxValueValidator(MAX_SWEEP_BATCH)],
        help_text=f"Deposit addresses per sweep transaction (1 to {MAX_SWEEP_BATCH}).")

    class Meta:
        verbose_name_plural = "sweep policies"
        constraints = [
            models.UniqueConstraint(fields=["network", "token"], name="sweep_policy_unique_token"),
            models.CheckConstraint(condition=Q(max_batch_size__gte=1, max_batch_size__lte=MAX_SWEEP_BATCH),
                                   name="sweep_policy_batch_bounds"),
            models.CheckConstraint(condition=Q(min_amount_base_units__gte=0), name="sweep_policy_min_not_negative"),
        ]

    def __str__(self):
        return f"sweep policy {self.token_id}@{self.network_id}"


class Sweep(models.Model):
    """One batch: one outgoing transaction of the hot wallet that sweeps one token from many deposit addresses (or,
    on a network without EIP-7702, the top-ups and the addresses' own transfers). Its status moves only through
    settlements.sweeps.sweep_transition (with a SweepEvent)."""

    class Status(models.TextChoices):
        SENT = "sent", "Sent: transaction(s) recorded, funds in transit"
        SETTLED = "settled", "Settled: final, the hot wallet holds what moved"
        FAILED = "failed", "Failed: reverted or cancelled, nothing moved"

    class Method(models.TextChoices):
        EIP7702 = "eip7702", "EIP-7702 batch"
        TOPUP = "topup", "Gas top-up, then each address's own transfer"

    network = models.ForeignKey("wallets.Network", on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey("wallets.Token", on_delete=models.PROTECT, related_name="+")
    method = models.CharField(max_length=16, choices=Method.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SENT)
    hot_address = models.CharField(max_length=42)
    transaction = models.OneToOneField("wallets.OutgoingTransaction", null=True, blank=True,
                                       on_delete=models.PROTECT, related_name="+",
                                       help_text="The batch transaction (EIP-7702 method).")
    amount_base_units = BaseUnitsField(help_text="What the batch was sent to move.")
    swept_base_units = BaseUnitsField(null=True, blank=True, help_text="What it moved (final receipts).")
    gas_used = models.PositiveBigIntegerField(null=True, blank=True)
    gas_cost_wei = BaseUnitsField(null=True, blank=True, help_text="gasUsed x effectiveGasPrice, all transactions.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status"], name="sweep_open_idx", condition=Q(status="sent"))]

    def __str__(self):
        return f"sweep {self.pk} ({self.status})"


class SweepItem(models.Model):
    """One deposit address of a sweep. `open` while its sweep is in flight: an address is never in two open sweeps
    (the database refuses it). `swept_base_units` and `gas_share` are recorded from the final receipt."""

    sweep = models.ForeignKey(Sweep, on_delete=models.PROTECT, related_name="items")
    deposit_address = models.ForeignKey("wallets.DepositAddress", on_delete=models.PROTECT, related_name="+")
    amount_base_units = BaseUnitsField(help_text="The amount asked for.")
    authorization = models.BooleanField(default=False, help_text="Its first sweep: carries its EIP-7702 authorization.")
    open = models.BooleanField(default=True)
    swept_base_units = BaseUnitsField(null=True, blank=True)
    gas_share = models.PositiveBigIntegerField(null=True, blank=True, help_text="Its share of the gas used.")
    transaction = models.OneToOneField("wallets.OutgoingTransaction", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="+", help_text="Its own transfer (top-up method).")
    topup = models.OneToOneField("wallets.OutgoingTransaction", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+", help_text="The hot wallet's gas top-up (top-up method).")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["deposit_address"], condition=Q(open=True), name="sweep_item_one_open"),
            models.UniqueConstraint(fields=["sweep", "deposit_address"], name="sweep_item_unique_address"),
        ]


class SweepEvent(models.Model):
    """A state change of a sweep (append-only), written in the transaction that made it."""

    sweep = models.ForeignKey(Sweep, on_delete=models.PROTECT, related_name="events")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    detail = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sweep", "id"]
# Payouts -------------------------------------------------------------------------------------------------------------

class PayoutAddress(models.Model):
    """Where a merchant's payouts in one token on one network go (at most one live row per merchant x network x
    token). Usable only from `usable_after` (the cooling-off period after it was added); removing it keeps the row
    (`removed_at`), so past payouts still name it. Every change has a PayoutAddressEvent."""

    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="payout_addresses")
    network = models.ForeignKey("wallets.Network", on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey("wallets.Token", on_delete=models.PROTECT, related_name="+")
    livemode = models.BooleanField(help_text="The network's mode.")
    address = models.CharField(max_length=42, help_text="Lower-case 0x hex.")
    usable_after = models.DateTimeField(help_text="End of the cooling-off period: no payout goes here before.")
    created = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["merchant", "network", "token"], condition=Q(removed_at__isnull=True),
                                    name="payout_address_one_per_asset"),
        ]
        verbose_name_plural = "payout addresses"

    def __str__(self):
        return f"{self.address} ({self.token_id}@{self.network_id}) of {self.merchant_id}"


class PayoutAddressEvent(models.Model):
    """Append-only: who added or removed a payout address, when, from where."""

    class Action(models.TextChoices):
        ADDED = "added"
        REMOVED = "removed"

    payout_address = models.ForeignKey(PayoutAddress, on_delete=models.PROTECT, related_name="events")
    action = models.CharField(max_length=16, choices=Action.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    detail = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)


class PayoutSchedule(models.Model):
    """A merchant's automatic payouts (no row: manual). Each due run pays out the whole available balance of every
    asset with a usable payout address, when it is at least `minimum_amount` (minor units of the pegged currency)."""

    class Interval(models.TextChoices):
        MANUAL = "manual"
        DAILY = "daily"
        WEEKLY = "weekly"

    merchant = models.OneToOneField("merchants.Merchant", primary_key=True, on_delete=models.CASCADE,
                                    related_name="payout_schedule")
    interval = models.CharField(max_length=16, choices=Interval.choices, default=Interval.MANUAL)
    weekly_anchor = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(6)],
                                                     help_text="Weekly: the weekday (0 Monday ... 6 Sunday, UTC).")
    minimum_amount = models.PositiveBigIntegerField(default=0, help_text="Minor units (cents).")
    last_run_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(weekly_anchor__lte=6), name="payout_schedule_anchor")]


def _po_id():
    return new_id("po")


class Payout(Approvable):
    """Money from a merchant's available balance to its payout address: Stripe's Payout. `status` moves only through
    settlements.payouts.payout_transition; the ledger side is posted in the same transactions."""

    class Status(models.TextChoices):
        PENDING = "pending"
        IN_TRANSIT = "in_transit"
        PAID = "paid"
        FAILED = "failed"
        CANCELED = "canceled"

    id = models.CharField(primary_key=True, max_length=40, default=_po_id, editable=False)
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="payouts")
    livemode = models.BooleanField()
    network = models.ForeignKey("wallets.Network", on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey("wallets.Token", on_delete=models.PROTECT, related_name="+")
    payout_address = models.ForeignKey(PayoutAddress, on_delete=models.PROTECT, related_name="payouts")
    address = models.CharField(max_length=42, help_text="The destination, as it was when the payout was created.")
    amount = models.PositiveBigIntegerField(help_text="Minor units of `currency`.")
    currency = models.CharField(max_length=3)
    amount_base_units = BaseUnitsField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    automatic = models.BooleanField(default=False)
    description = models.CharField(max_length=1000, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    # Why a pending payout has not been sent yet (e.g. the hot wallet is short); empty when nothing holds it.
    pending_reason = models.CharField(max_length=64, blank=True, default="")
    failure_code = models.CharField(max_length=64, blank=True, default="")
    failure_message = models.CharField(max_length=300, blank=True, default="")
    outgoing_transaction = models.OneToOneField("wallets.OutgoingTransaction", null=True, blank=True,
                                                on_delete=models.PROTECT, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    arrived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["merchant", "livemode", "-created", "-id"], name="payout_list_idx"),
            models.Index(fields=["status"], name="payout_open_idx",
                         condition=Q(status__in=["pending", "in_transit"])),
            models.Index(fields=["created"], name="payout_awaiting_idx", condition=Q(awaiting_approval=True)),
        ]
        constraints = [models.CheckConstraint(condition=Q(amount_base_units__gt=0), name="payout_amount_positive"),
                       *approval_constraints("payout")]

    def __str__(self):
        return f"{self.id} {self.status}"


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
