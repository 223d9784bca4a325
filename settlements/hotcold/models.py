"""Hot and cold (docs/money-out.md, "Hot and cold"): per network x token, the hot wallet's floor and ceiling and the
cold address (watch-only: no key here); the transfers of the surplus to cold with their events; floor alerts.
Registered in the settlements app (imported by settlements/models.py)."""
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from gateway.fields import BaseUnitsField

from .validators import cold_address_validate

MIN_TRANSFER_GAS = 21_000
MAX_TRANSFER_GAS = 1_000_000


class HotColdSetting(models.Model):
    """One token's hot/cold policy (its network is the token's). Above `hot_ceiling_base_units` (the ledger's
    hot_wallet balance), the surplus goes to `cold_address`; below `hot_floor_base_units`, an alert. The network's
    native coin (gas) gets an alert below `native_floor_base_units` (the highest of the network's rows counts)."""

    token = models.OneToOneField("wallets.Token", on_delete=models.PROTECT, related_name="+")
    hot_floor_base_units = BaseUnitsField(
        default=0, validators=[MinValueValidator(0)],
        help_text="Alert (log, admin, email to staff) when the hot wallet holds less than this, in base units.")
    hot_ceiling_base_units = BaseUnitsField(
        validators=[MinValueValidator(1)],
        help_text="Above this (base units), the surplus goes to the cold address. Must be above the floor.")
    native_floor_base_units = BaseUnitsField(
        default=0, validators=[MinValueValidator(0)],
        help_text="Alert when the hot wallet's native coin (gas) is below this, in wei-like base units.")
    cold_address = models.CharField(
        max_length=42, validators=[cold_address_validate],
        help_text="Watch-only: this system holds no key for it. 0x hex; mixed case must be a valid EIP-55 checksum.")
    transfer_gas_limit = models.PositiveIntegerField(
        default=100_000, validators=[MinValueValidator(MIN_TRANSFER_GAS), MaxValueValidator(MAX_TRANSFER_GAS)],
        help_text="Gas limit of the token transfer to cold (21,000 to 1,000,000).")
    is_active = models.BooleanField(default=True, help_text="Off: no transfers to cold, no alerts for this token.")
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(hot_floor_base_units__gte=0) & Q(native_floor_base_units__gte=0),
                                   name="hot_cold_floors_not_negative"),
            models.CheckConstraint(condition=Q(hot_ceiling_base_units__gt=F("hot_floor_base_units")),
                                   name="hot_cold_ceiling_above_floor"),
            models.CheckConstraint(condition=Q(transfer_gas_limit__gte=MIN_TRANSFER_GAS)
                                   & Q(transfer_gas_limit__lte=MAX_TRANSFER_GAS), name="hot_cold_gas_limit_bounds"),
            models.CheckConstraint(condition=Q(cold_address__regex=r"^0x[0-9a-f]{40}$"),
                                   name="hot_cold_cold_address_lower_hex"),
        ]
        verbose_name = "hot/cold setting"

    def __str__(self):
        return f"hot/cold {self.token}"


class ColdTransfer(models.Model):
    """The surplus of the hot wallet above its ceiling, sent to the cold address by one OutgoingTransaction
    (purpose "cold", source_reference = this id). At most one `sent` per token (a partial unique index)."""

    class Status(models.TextChoices):
        SENT = "sent", "Sent (the transaction manager has it: not final yet)"
        COMPLETED = "completed", "Final and succeeded (in the cold wallet)"
        FAILED = "failed", "Reverted: reversed in the ledger"
        CANCELLED = "cancelled", "Cancelled: reversed in the ledger"

    network = models.ForeignKey("wallets.Network", on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey("wallets.Token", on_delete=models.PROTECT, related_name="+")
    from_address = models.CharField(max_length=42, help_text="The hot wallet.")
    to_address = models.CharField(max_length=42, help_text="The cold address.")
    amount_base_units = BaseUnitsField(validators=[MinValueValidator(1)])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SENT)
    outgoing_transaction = models.OneToOneField("wallets.OutgoingTransaction", null=True, blank=True,
                                                on_delete=models.PROTECT, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token"], condition=Q(status="sent"), name="cold_transfer_one_in_flight"),
            models.CheckConstraint(condition=Q(amount_base_units__gt=0), name="cold_transfer_amount_positive"),
        ]
        ordering = ["-id"]

    def __str__(self):
        return f"cold transfer {self.pk} ({self.status})"


class ColdTransferEvent(models.Model):
    """A state change of a cold transfer (append-only), written by `cold_transfer_transition`."""

    cold_transfer = models.ForeignKey(ColdTransfer, on_delete=models.PROTECT, related_name="events")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    detail = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cold_transfer", "id"]


class HotWalletAlert(models.Model):
    """The hot wallet's ledger balance of one asset (token, or the native coin: token empty) fell below its floor.
    One open alert per (network, asset), raised once (log + email to staff) and resolved when the balance is back at
    or above the floor; a later fall raises a new one."""

    network = models.ForeignKey("wallets.Network", on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey("wallets.Token", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                              help_text="Empty: the native coin (gas).")
    address = models.CharField(max_length=42, help_text="The hot wallet.")
    balance_base_units = BaseUnitsField(help_text="The hot wallet's balance when the alert was raised.")
    floor_base_units = BaseUnitsField()
    raised_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_balance_base_units = BaseUnitsField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["network", "token"], condition=Q(resolved_at__isnull=True),
                                    nulls_distinct=False, name="hot_wallet_alert_one_open"),
        ]
        ordering = ["-raised_at", "-id"]

    def __str__(self):
        asset = self.token.currency if self.token_id else "native"
        return f"hot wallet {asset}@{self.network_id} below floor"


class HotWalletTopup(models.Model):
    """Funds an operator sent to the hot wallet from outside the gateway's own sends (native coin for gas, tokens from
    the cold address or elsewhere), recorded by `manage.py ledger topup` with the funding transaction, which is
    checked on the chain (succeeded, and, unless told otherwise, moved exactly this amount to the hot wallet).
    One per transaction and asset; `block_number` lets reconciliation wait until that block is final."""

    network = models.ForeignKey("wallets.Network", on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey("wallets.Token", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                              help_text="Empty: the native coin.")
    address = models.CharField(max_length=42, help_text="The hot wallet.")
    tx_hash = models.CharField(max_length=66)
    block_number = models.BigIntegerField()
    amount_base_units = BaseUnitsField(validators=[MinValueValidator(1)])
    from_cold = models.BooleanField(default=False, help_text="Moved back from the token's cold address.")
    reason = models.CharField(max_length=200)
    journal = models.OneToOneField("settlements.JournalTransaction", on_delete=models.PROTECT, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["network", "tx_hash", "token"], nulls_distinct=False,
                                    name="hot_wallet_topup_once"),
            models.CheckConstraint(condition=Q(amount_base_units__gt=0), name="hot_wallet_topup_positive"),
        ]
        ordering = ["-id"]
