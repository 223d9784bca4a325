"""The transaction manager's rows: sending addresses with their nonce sequence, outgoing transactions, their signed
attempts and their events (docs/money-out.md). Registered in the wallets app (imported by wallets/models.py)."""
from django.db import models

from gateway.fields import BaseUnitsField


class SendingAddress(models.Model):
    """An address the gateway sends from on one network (the hot wallet), with the nonce sequence the database owns:
    `next_nonce` is taken under select_for_update when a transaction is created, never read from the node."""

    class Purpose(models.TextChoices):
        HOT = "hot", "Hot wallet"
        DEPOSIT = "deposit", "Deposit address (non-7702 sweeps: its own token transfer)"

    network = models.ForeignKey("wallets.Network", on_delete=models.PROTECT, related_name="+")
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.HOT)
    address = models.CharField(max_length=42, help_text="Lower-case 0x hex.")
    key_ref = models.CharField(max_length=200, help_text="The signer's name of the key (an HD path, or an HSM key id).")
    next_nonce = models.PositiveBigIntegerField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["network", "purpose"], name="sending_address_unique_purpose",
                                    condition=~models.Q(purpose="deposit")),
            models.UniqueConstraint(fields=["network", "address"], name="sending_address_unique_address"),
        ]
        verbose_name_plural = "sending addresses"

    def __str__(self):
        return f"{self.purpose} {self.address} on network {self.network_id}"


class OutgoingTransaction(models.Model):
    """One nonce of one sending address: what the gateway wants on chain. Its signed attempts (the first one, then
    fee bumps or a cancellation, same nonce) are OutgoingAttempt rows; its state changes are OutgoingTransactionEvent
    rows. `status` moves only through wallets.outgoing.services.outgoing_transaction_transition."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued (nonce allocated, not signed)"
        SIGNED = "signed", "Signed and stored, not broadcast yet"
        BROADCAST = "broadcast", "Broadcast, waiting to be mined"
        REPLACING = "replacing", "Stuck: a replacement with a higher fee is to be signed"
        DROPPED = "dropped", "Dropped by the node: to be broadcast again"
        MINED = "mined", "Mined, not final yet"
        REORGED = "reorged", "Its block was reorged away: to be broadcast again"
        FINAL = "final", "Final and succeeded"
        FAILED = "failed", "Final and reverted (gas paid, no effect)"
        CANCELLED = "cancelled", "Final: the nonce was used by a cancellation"

    class Type(models.IntegerChoices):
        LEGACY = 0, "Legacy (gas price)"
        EIP1559 = 2, "EIP-1559"
        EIP7702 = 4, "EIP-7702 (set code)"

    network = models.ForeignKey("wallets.Network", on_delete=models.PROTECT, related_name="+")
    sending_address = models.ForeignKey(SendingAddress, on_delete=models.PROTECT, related_name="transactions")
    from_address = models.CharField(max_length=42)
    nonce = models.PositiveBigIntegerField()
    to_address = models.CharField(max_length=42)
    value_base_units = BaseUnitsField(default=0)
    data = models.BinaryField(default=b"")
    gas_limit = models.PositiveBigIntegerField()
    tx_type = models.PositiveSmallIntegerField(choices=Type.choices)
    authorization_list = models.JSONField(default=list, blank=True, help_text="Signed EIP-7702 tuples (type 4).")
    authorizations_to_sign = models.JSONField(
        default=list, blank=True,
        help_text="EIP-7702 authorizations the signer signs before the first attempt ([{key_ref, authority, "
                  "delegate}], nonce = the authority's nonce on chain then); the signed tuples go to authorization_list.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    purpose = models.CharField(max_length=40, help_text="What the upper layer sends it for: sweep, payout, refund ...")
    source_reference = models.CharField(max_length=100, blank=True, help_text="The upper layer's id of the cause.")
    cancel_requested = models.BooleanField(default=False)
    current_attempt = models.ForeignKey("OutgoingAttempt", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+", help_text="The attempt broadcast last.")
    mined_attempt = models.ForeignKey("OutgoingAttempt", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="+", help_text="The attempt whose receipt we follow.")
    block_number = models.BigIntegerField(null=True, blank=True)
    block_hash = models.CharField(max_length=66, blank=True)
    receipt_status = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1 succeeded, 0 reverted.")
    gas_used = models.PositiveBigIntegerField(null=True, blank=True)
    effective_gas_price = BaseUnitsField(null=True, blank=True)
    last_broadcast_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["network", "from_address", "nonce"], name="outgoing_tx_unique_nonce"),
            models.UniqueConstraint(fields=["purpose", "source_reference"], name="outgoing_tx_unique_source",
                                    condition=~models.Q(source_reference="")),
        ]
        indexes = [
            models.Index(fields=["network", "status"], name="outgoing_tx_open_idx",
                         condition=~models.Q(status__in=["final", "failed", "cancelled"])),
        ]
        ordering = ["network", "from_address", "nonce"]

    def __str__(self):
        return f"{self.from_address}#{self.nonce} on network {self.network_id} ({self.status})"


class OutgoingAttempt(models.Model):
    """One signed version of an outgoing transaction (same nonce): stored, raw bytes and hash, BEFORE it is broadcast.
    Replaced attempts are kept: any of them may still be the one that gets mined."""

    class Kind(models.TextChoices):
        ORIGINAL = "original", "Original"
        BUMP = "bump", "Fee bump"
        CANCEL = "cancel", "Cancellation (0 to itself)"

    transaction = models.ForeignKey(OutgoingTransaction, on_delete=models.PROTECT, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    tx_hash = models.CharField(max_length=66, unique=True)
    raw_transaction = models.BinaryField()
    gas_price = BaseUnitsField(null=True, blank=True, help_text="Type 0.")
    max_fee_per_gas = BaseUnitsField(null=True, blank=True, help_text="Types 2 and 4.")
    max_priority_fee_per_gas = BaseUnitsField(null=True, blank=True, help_text="Types 2 and 4.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["transaction", "number"], name="outgoing_attempt_unique_number"),
        ]
        ordering = ["transaction", "number"]

    def __str__(self):
        return self.tx_hash


class OutgoingTransactionEvent(models.Model):
    """A state change of an outgoing transaction (append-only), written in the transaction that made it."""

    transaction = models.ForeignKey(OutgoingTransaction, on_delete=models.PROTECT, related_name="events")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    attempt = models.ForeignKey(OutgoingAttempt, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    detail = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["transaction", "id"]

    def __str__(self):
        return f"{self.transaction_id}: {self.from_status or '-'} -> {self.to_status}"


class OutgoingTransfer(models.Model):
    """A movement of funds out of (or into) one of our deposit addresses that the gateway itself causes, written in
    the database transaction that creates its outgoing transaction (append-only). Reconciliation
    (wallets/chain/reconcile.py `outgoing_base_units`) counts it once the transaction is mined, succeeded and at or
    below the reconciliation block (a `gas` fact once it is mined at all: a reverted transaction paid its gas too).
    A planned movement that did not happen (a deposit the batch skipped) gets a
    second row with the opposite amount (`kind = skipped`), written when the upper layer settles the transaction.
    `amount_base_units` is what leaves `deposit_address`: negative for a gas top-up sent to it."""

    class Kind(models.TextChoices):
        SWEEP = "sweep", "Tokens swept to the hot wallet"
        SKIPPED = "skipped", "A planned sweep that did not happen (negates it)"
        TOPUP = "topup", "Native coin sent to the address for gas (negative outflow)"
        GAS = "gas", "Native coin the address paid as gas for its own transaction"

    transaction = models.ForeignKey(OutgoingTransaction, on_delete=models.PROTECT, related_name="transfers")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    deposit_address = models.ForeignKey("wallets.DepositAddress", on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey("wallets.Token", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                              help_text="Empty: the native coin.")
    to_address = models.CharField(max_length=42)
    amount_base_units = BaseUnitsField(help_text="Base units out of the deposit address (negative: into it).")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["deposit_address", "token"], name="outgoing_transfer_address_idx")]

    def __str__(self):
        return f"{self.kind} {self.amount_base_units} from {self.deposit_address_id} ({self.transaction_id})"
