from django.conf import settings
from django.db import models

from gateway.fields import BaseUnitsField


class Network(models.Model):
    """An EVM chain the gateway watches. Rows are configuration: adding a chain needs no code.

    `api_name` is what merchants say (`bsc`); in test mode it resolves to the active test-mode row of that name
    (BSC testnet, or the local devnet on a developer machine)."""

    class Finality(models.TextChoices):
        FINALIZED = "finalized", "The node's `finalized` tag"
        SAFE = "safe", "The node's `safe` tag"
        CONFIRMATIONS = "confirmations", "A number of confirmations"

    code = models.SlugField(max_length=40, unique=True, help_text="bsc, bsc-testnet, devnet ...")
    api_name = models.SlugField(max_length=40, help_text="The network name of the API: bsc, ethereum, polygon ...")
    display_name = models.CharField(max_length=80)
    chain_id = models.PositiveBigIntegerField()
    livemode = models.BooleanField(help_text="Mainnet (live mode) or a test chain (test mode).")
    is_active = models.BooleanField(default=True)
    native_currency = models.CharField(max_length=16, default="eth")
    native_decimals = models.PositiveSmallIntegerField(default=18)
    finality = models.CharField(max_length=16, choices=Finality.choices, default=Finality.FINALIZED)
    confirmations = models.PositiveIntegerField(default=12, help_text="Used when finality is by confirmations.")
    block_time_ms = models.PositiveIntegerField(default=2000)
    explorer_url = models.URLField(blank=True)
    public_rpc_url = models.URLField(
        blank=True, help_text="A public RPC URL without any secret, given to customers' browser wallets to add this "
                              "chain on the checkout (wallet_addEthereumChain); empty: the wallet must know the chain. "
                              "Never the watcher's RPC URL: those often carry an API key.",
    )
    scan_native = models.BooleanField(
        default=False, help_text="Also read block bodies for native-coin payments (costly on busy chains)."
    )
    fee_model = models.CharField(
        max_length=8, choices=[("eip1559", "EIP-1559"), ("legacy", "Legacy gas price")], default="eip1559",
        help_text="How outgoing transactions pay gas (BSC: legacy).",
    )
    tx_replace_seconds = models.PositiveIntegerField(
        default=60, help_text="An outgoing transaction not mined after this long is replaced with a higher fee.",
    )
    max_fee_multiple = models.PositiveSmallIntegerField(
        default=4, help_text="Fee ceiling: a replacement never offers more than this many times the fees of the "
                             "transaction's first attempt (each fee field).",
    )
    max_fee_per_gas_wei = BaseUnitsField(
        null=True, blank=True, help_text="Fee ceiling in wei per gas (gasPrice / maxFeePerGas) for outgoing "
                                         "transactions, over the multiple above; empty: none.",
    )
    eip7702 = models.BooleanField(
        default=True, help_text="The chain executes EIP-7702 (type-4) transactions: deposit addresses are swept by "
                                "delegation to the Sweeper contract. Off: gas top-up, then each address's own transfer.",
    )
    sweeper_address = models.CharField(
        max_length=42, blank=True, help_text="This network's Sweeper contract (contracts/Sweeper.sol, its hot wallet in "
                                             "the bytecode): `manage.py sweep --deploy`. Lower-case 0x hex.",
    )
    max_log_range = models.PositiveIntegerField(
        default=5000, help_text="Largest eth_getLogs block range to try; halved on a provider's range error."
    )
    rpc_env = models.CharField(
        max_length=80, blank=True,
        help_text="Environment variable holding this chain's RPC URLs, comma separated (they may carry secrets).",
    )

    class Meta:
        permissions = [("rescan_network", "Can rescan a block range of a network")]
        constraints = [
            models.UniqueConstraint(
                fields=["api_name", "livemode"], condition=models.Q(is_active=True), name="one_active_network_per_mode"
            ),
            # The hot wallet's key is m/44'/60'/1'/0/<chain id>: a second row of a chain (a test network given a
            # live chain's id) would sign with the same key. `manage.py check_live` names any clash too.
            models.UniqueConstraint(fields=["chain_id"], name="network_unique_chain_id"),
        ]
        ordering = ["livemode", "api_name", "code"]

    def __str__(self):
        return f"{self.display_name} ({self.code})"

    def explorer_link(self, kind: str, value: str) -> str:
        """The block explorer's page of a transaction (`tx`) or an address (`address`) on this network; empty when
        the network has no explorer (a local devnet). Etherscan's paths, which the seeded explorers all share."""
        return f"{self.explorer_url.rstrip('/')}/{kind}/{value}" if self.explorer_url else ""


class Token(models.Model):
    network = models.ForeignKey(Network, on_delete=models.CASCADE, related_name="tokens")
    currency = models.SlugField(max_length=16, help_text="usdt, usdc ...")
    contract_address = models.CharField(max_length=42, help_text="Lower-case 0x hex.")
    decimals = models.PositiveSmallIntegerField()
    # The fiat currency the token is pegged to at 1:1 (stablecoins); empty for floating-price tokens.
    pegged_currency = models.CharField(max_length=3, default="usd", blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["network", "currency"], name="token_unique_currency"),
            models.UniqueConstraint(fields=["network", "contract_address"], name="token_unique_contract"),
        ]
        ordering = ["network", "currency"]

    def __str__(self):
        return f"{self.currency.upper()} on {self.network.code}"

    def save(self, *args, **kwargs):
        self.contract_address = self.contract_address.lower()
        super().save(*args, **kwargs)


class MasterSeed(models.Model):
    """The one BIP39 seed, encrypted with a data key that is itself wrapped by the key-encryption key (KEK)."""

    singleton = models.BooleanField(default=True, unique=True, editable=False)
    encrypted_mnemonic = models.BinaryField(editable=False)
    wrapped_data_key = models.BinaryField(editable=False)
    kek_fingerprint = models.CharField(max_length=16, editable=False)
    # Extended public key at m/44'/60'/0'/0: the web tier derives deposit addresses without any secret.
    account_xpub = models.CharField(max_length=200, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    rotated = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"Master seed (KEK {self.kek_fingerprint})"


class DepositAddress(models.Model):
    """A derived address, m/44'/60'/0'/0/<index>. One per payment, never reused; serves every EVM network."""

    index = models.PositiveBigIntegerField(unique=True)
    address = models.CharField(max_length=42, unique=True, help_text="Lower-case 0x hex.")
    merchant = models.ForeignKey("merchants.Merchant", on_delete=models.PROTECT, related_name="deposit_addresses")
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.address


class ChainCursor(models.Model):
    """Where the scanner of one network stands: the last block fully processed. It only moves forward one
    contiguous range at a time, and back to a common ancestor after a reorg; it never jumps ahead."""

    network = models.OneToOneField(Network, on_delete=models.CASCADE, related_name="cursor")
    block_number = models.BigIntegerField(help_text="Last processed block (-1: nothing yet).")
    block_hash = models.CharField(max_length=66, blank=True)
    head_number = models.BigIntegerField(default=0, help_text="The node's head when last seen (for lag).")
    finalized_number = models.BigIntegerField(default=0, help_text="The last final block when last seen.")
    updated = models.DateTimeField(auto_now=True)

    @property
    def lag(self) -> int:
        return max(0, self.head_number - self.block_number)

    def __str__(self):
        return f"{self.network.code} at {self.block_number}"


class ScannedBlock(models.Model):
    """The hash chain of the blocks the scanner processed and that are not final yet (plus the last final one):
    each step compares it with the node's to detect reorgs."""

    network = models.ForeignKey(Network, on_delete=models.CASCADE, related_name="+")
    number = models.BigIntegerField()
    hash = models.CharField(max_length=66)
    parent_hash = models.CharField(max_length=66)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["network", "number"], name="scanned_block_unique_number")]


class Transfer(models.Model):
    """An on-chain transfer to one of our deposit addresses, as seen in one block. Append-only: a reorg never
    deletes it, it sets `orphaned_at`; the replacement in the new chain is a new row (other block hash)."""

    # No index of its own: (network, block_number) below serves every lookup by network. Each index costs every
    # insert of the scanner's hot path (docs/benchmarks.md, chain ingest).
    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="+", db_index=False)
    token = models.ForeignKey(Token, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                              help_text="Empty for the native coin.")
    tx_hash = models.CharField(max_length=66)
    log_index = models.IntegerField(help_text="-1 for a native-coin transfer (the transaction's value).")
    block_number = models.BigIntegerField()
    block_hash = models.CharField(max_length=66)
    from_address = models.CharField(max_length=42)
    to_address = models.CharField(max_length=42)  # looked up through deposit_address, never by itself
    deposit_address = models.ForeignKey(DepositAddress, on_delete=models.PROTECT, related_name="transfers")
    amount_base_units = BaseUnitsField()
    seen_at = models.DateTimeField(auto_now_add=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    orphaned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One live row per log in a block. An orphaned row is history: if its block comes back (a flip-flop
            # between forks or endpoints) the transfer gets a new live row beside it.
            models.UniqueConstraint(
                fields=["network", "tx_hash", "log_index", "block_hash"], name="transfer_unique_in_block",
                condition=models.Q(orphaned_at__isnull=True),
            ),
        ]
        indexes = [models.Index(fields=["network", "block_number"], name="transfer_block_idx")]

    @property
    def is_final(self) -> bool:
        return self.finalized_at is not None and self.orphaned_at is None

    def __str__(self):
        return f"{self.tx_hash}:{self.log_index}"


class AddressActivity(models.Model):
    """A queue row: something changed for the transfers of this address (seen, final, orphaned). Written in the
    scanner's transaction; the payments app consumes it (select_for_update skip_locked) and deletes it in the
    transaction that applies the change, so a crash on either side loses nothing."""

    deposit_address = models.ForeignKey(DepositAddress, on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField(auto_now_add=True)


class BalanceDiscrepancy(models.Model):
    """A difference, found by reconciliation (wallets/reconcile.py), between the balance of a deposit address on
    the chain and what the gateway recorded for it, both at the same final block: `difference = onchain - recorded`
    (positive: coin or tokens we never credited, e.g. native coin sent by an internal transaction; negative: funds
    missing that we credited). The facts are append-only; staff resolve a row (`resolved_at`, `resolved_by`, `note`)
    through `wallets.chain.services.balance_discrepancy_resolve`. One row per distinct (address, token, on-chain,
    recorded) pair, resolved or not: a run that finds the same amounts again records nothing.

    `wallet` says whose balance it is: a deposit address (`deposit_address`, against its transfers), or the operator's
    hot wallet or cold address (`address`, against the ledger's hot_wallet / cold_wallet account: the settlements app
    records those, settlements/hotcold/reconcile.py)."""

    class Wallet(models.TextChoices):
        DEPOSIT = "deposit", "Deposit address"
        HOT = "hot", "Hot wallet"
        COLD = "cold", "Cold address"

    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="+")
    wallet = models.CharField(max_length=16, choices=Wallet.choices, default=Wallet.DEPOSIT,
                              help_text="Whose balance: a deposit address, or the operator's hot wallet or cold "
                                        "address (checked against the ledger by settlements/hotcold/reconcile.py).")
    deposit_address = models.ForeignKey(DepositAddress, null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+", help_text="Deposit addresses only.")
    address = models.CharField(max_length=42, blank=True, default="",
                               help_text="The hot wallet or cold address (empty for a deposit address).")
    token = models.ForeignKey(Token, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                              help_text="Empty for the native coin.")
    block_number = models.BigIntegerField(help_text="The final block both balances were read at (first seen).")
    onchain_base_units = BaseUnitsField(help_text="The balance on the chain at the block.")
    recorded_base_units = BaseUnitsField(
        help_text="Final, not orphaned transfers received up to the block, less what the gateway sent out."
    )
    difference_base_units = BaseUnitsField(help_text="On-chain minus recorded.")
    detected_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    note = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["network", "deposit_address", "token", "onchain_base_units", "recorded_base_units"],
                name="balance_discrepancy_unique_fact", nulls_distinct=False,
                condition=models.Q(wallet="deposit"),
            ),
            models.UniqueConstraint(
                fields=["network", "wallet", "address", "token", "onchain_base_units", "recorded_base_units"],
                name="balance_discrepancy_unique_wallet_fact", nulls_distinct=False,
                condition=~models.Q(wallet="deposit"),
            ),
            models.CheckConstraint(
                condition=(models.Q(wallet="deposit", deposit_address__isnull=False, address="")
                           | (~models.Q(wallet="deposit") & models.Q(deposit_address__isnull=True)
                              & ~models.Q(address=""))),
                name="balance_discrepancy_whose",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    difference_base_units=models.F("onchain_base_units") - models.F("recorded_base_units")
                ) & ~models.Q(difference_base_units=0),
                name="balance_discrepancy_difference",
            ),
        ]
        indexes = [
            models.Index(fields=["network", "detected_at"], name="balance_discrepancy_net_idx"),
            models.Index(fields=["detected_at"], name="balance_discrepancy_open_idx",
                         condition=models.Q(resolved_at__isnull=True)),
        ]
        ordering = ["-detected_at", "-id"]
        verbose_name_plural = "balance discrepancies"

    @property
    def is_resolved(self) -> bool:
        return self.resolved_at is not None

    def __str__(self):
        token = f"token {self.token_id}" if self.token_id else "native"
        whose = f"address {self.deposit_address_id}" if self.deposit_address_id else f"{self.wallet} {self.address}"
        return f"#{self.pk} {whose} {token}: {self.difference_base_units:+d}"


# The transaction manager's models (wallets/outgoing/), registered in this app.
from .outgoing.models import (  # noqa: E402,F401
    OutgoingAttempt,
    OutgoingTransaction,
    OutgoingTransfer,
    OutgoingTransactionEvent,
    SendingAddress,
)


class BlockedAddress(models.Model):
    """An address the gateway takes nothing from and sends nothing to (issue 13, risk controls; docs/operations.md,
    "Address blocklist"): a transfer from it to a deposit address is held for review (payments.HeldDeposit), a refund
    or payout to it is refused (or held when it was queued before). One row per address, lower-case 0x hex like every
    address the gateway stores; deactivated (with who and why), never deleted. Written only by wallets/blocklist.py."""

    class Source(models.TextChoices):
        OFAC = "ofac", "OFAC SDN list"
        CSV = "csv", "CSV import"
        MANUAL = "manual", "Added by hand"

    address = models.CharField(max_length=42, unique=True, help_text="Lower-case 0x hex.")
    source = models.CharField(max_length=16, choices=Source.choices)
    reason = models.TextField(help_text="Why it is blocked (the SDN entry's name and programs, a case number ...).")
    list_reference = models.CharField(max_length=200, blank=True, default="",
                                      help_text="The list's reference: e.g. the SDN entry uid and the feature.")
    added_at = models.DateTimeField(auto_now_add=True)
    added_by = models.CharField(max_length=200, help_text="Staff user name or command:<name>.")
    active = models.BooleanField(default=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deactivated_by = models.CharField(max_length=200, blank=True, default="")
    deactivation_reason = models.TextField(blank=True, default="")

    class Meta:
        permissions = [("deactivate_blockedaddress", "Can deactivate a blocked address, with a reason")]
        ordering = ["-added_at", "-id"]
        verbose_name_plural = "blocked addresses"

    def __str__(self):
        return self.address


class IssuerBlacklistAlert(models.Model):
    """A stablecoin issuer froze one of our addresses: USDT's `AddedBlackList(address)` or USDC's
    `Blacklisted(address)` on a watched token contract, naming a deposit address or a hot wallet. Recorded once per
    log by the scanner (in its step's transaction), logged and emailed to staff; staff acknowledge it in admin."""

    class Kind(models.TextChoices):
        DEPOSIT = "deposit", "Deposit address"
        HOT = "hot", "Gateway sending address (hot wallet)"

    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="+")
    token = models.ForeignKey(Token, on_delete=models.PROTECT, related_name="+")
    event = models.CharField(max_length=32, help_text="AddedBlackList (USDT) or Blacklisted (USDC).")
    address = models.CharField(max_length=42, help_text="Lower-case 0x hex: the address the issuer blacklisted.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    deposit_address = models.ForeignKey(DepositAddress, null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+")
    tx_hash = models.CharField(max_length=66)
    log_index = models.IntegerField()
    block_number = models.BigIntegerField()
    block_hash = models.CharField(max_length=66)
    raised_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=200, blank=True, default="")
    note = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["network", "tx_hash", "log_index"], name="issuer_blacklist_alert_once"),
        ]
        permissions = [("acknowledge_issuerblacklistalert", "Can acknowledge an issuer blacklist alert")]
        ordering = ["-raised_at", "-id"]

    def __str__(self):
        return f"{self.event} {self.address} on {self.network_id}"
