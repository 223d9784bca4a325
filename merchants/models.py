from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.plugins.otp_totp.models import TOTPDevice, default_key

from gateway.ids import new_id

from .fields import EncryptedTextField


def _merchant_id():
    return new_id("acct", 16)


def _key_id():
    return new_id("key", 16)


# Bounds of the settings that decide money. A tolerance of 10,000 bps would count an unfunded intent as paid; an
# expiry of 0 minutes or of months would expire intents at once or hold deposit addresses for ever.
UNDERPAYMENT_TOLERANCE_BPS_MAX = 1000  # 10 %
PAYMENT_EXPIRY_MINUTES_MIN = 5
PAYMENT_EXPIRY_MINUTES_MAX = 7 * 24 * 60  # 7 days

# Settings of the portal's settings pages (docs/portal.md, "Settings").
ACCENT_COLOR_RE = r"^#[0-9a-f]{6}$"  # stored lower case
STATEMENT_DESCRIPTOR_MAX = 22  # Stripe's limit
NOTIFICATION_EMAILS_MAX = 5


class Merchant(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=_merchant_id, editable=False)
    name = models.CharField(max_length=200)
    email = models.EmailField(unique=True)
    # The login that created the merchant (sign-up, `create_merchant`). Who may use the portal, and how, is its
    # team: Membership rows (this login is the first owner).
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="merchant"
    )
    payment_expiry_minutes = models.PositiveIntegerField(
        default=30, help_text="How long a payment intent waits for funds before it expires (5 minutes to 7 days).",
        validators=[MinValueValidator(PAYMENT_EXPIRY_MINUTES_MIN), MaxValueValidator(PAYMENT_EXPIRY_MINUTES_MAX)],
    )
    underpayment_tolerance_bps = models.PositiveIntegerField(
        default=0, help_text="An intent short by at most this many basis points still succeeds (at most 1000, 10%).",
        validators=[MaxValueValidator(UNDERPAYMENT_TOLERANCE_BPS_MAX)],
    )
    accept_late_payments = models.BooleanField(
        default=False, help_text="Whether a fully funded payment that arrives after expiry succeeds."
    )
    enabled_networks = models.JSONField(
        default=list, blank=True, help_text="API network names (bsc, ethereum, ...); empty means every active one."
    )
    enabled_tokens = models.JSONField(
        default=list, blank=True, help_text="Token currencies (usdt, usdc, ...); empty means every active one.")
    # Business profile and checkout branding (portal settings; the logo is a MerchantLogo row).
    public_name = models.CharField(max_length=200, blank=True, default="",
                                   help_text="The name customers see on the checkout and in emails; empty: `name`.")
    support_email = models.EmailField(blank=True, default="")
    website_url = models.URLField(max_length=2048, blank=True, default="",
                                  help_text="The checkout's return link when an intent has no return_url.")
    statement_descriptor = models.CharField(max_length=STATEMENT_DESCRIPTOR_MAX, blank=True, default="")
    brand_accent_color = models.CharField(
        max_length=7, blank=True, default="", validators=[RegexValidator(ACCENT_COLOR_RE)],
        help_text="#rrggbb (lower case); empty: the checkout's own colour.")
    # Emails to the merchant (merchants.emails): to `notification_emails`, or the owners when it is empty.
    notification_emails = models.JSONField(default=list, blank=True)
    notify_payment_succeeded = models.BooleanField(default=False)
    notify_webhook_failing = models.BooleanField(default=True)
    notify_daily_summary = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    # Risk controls (docs/operations.md, "Risk controls"): set only by merchants.services.merchant_freeze /
    # merchant_unfreeze. A frozen account keeps reading its objects and receiving its webhooks, and takes no new
    # payment (API creation and confirmation refused, checkout closed).
    frozen_at = models.DateTimeField(null=True, blank=True, editable=False)
    frozen_reason = models.CharField(max_length=500, blank=True, default="", editable=False)
    # Limits on creation, in minor units of `limit_currency`; empty: none. While either is set, intents in another
    # currency are refused (a limit that a change of currency escapes would be no limit).
    limit_currency = models.CharField(max_length=3, default="usd",
                                      help_text="The currency of the limits below (lower case, e.g. usd).")
    limit_per_payment_minor = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Largest amount of one payment intent, in minor units (cents); empty: none.")
    limit_per_day_minor = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Largest total of the payment intents created in one UTC day and mode, in "
                                         "minor units (cents); empty: none.")
    # Limits on money out (payouts and refunds; docs/money-out.md, "Approvals"), in minor units of `limit_currency`;
    # empty: none. Above either, a payout or refund is created but waits for a staff approval.
    limit_money_out_per_transaction_minor = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Largest payout or refund sent without a staff approval, in minor units "
                                         "(cents); empty: none.")
    limit_money_out_per_day_minor = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Largest total of payouts and refunds released without a staff approval in "
                                         "one UTC day and mode, in minor units (cents); empty: none.")
    created = models.DateTimeField(auto_now_add=True)

    @property
    def is_frozen(self) -> bool:
        return self.frozen_at is not None

    @property
    def display_name(self) -> str:
        """What customers read: the public business name, else the account's name."""
        return self.public_name or self.name

    @property
    def has_limits(self) -> bool:
        return self.limit_per_payment_minor is not None or self.limit_per_day_minor is not None

    class Meta:
        permissions = [("freeze_merchant", "Can freeze and unfreeze a merchant")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(underpayment_tolerance_bps__gte=0,
                                   underpayment_tolerance_bps__lte=UNDERPAYMENT_TOLERANCE_BPS_MAX),
                name="merchant_underpayment_tolerance_bps_range",
            ),
            models.CheckConstraint(
                condition=models.Q(payment_expiry_minutes__gte=PAYMENT_EXPIRY_MINUTES_MIN,
                                   payment_expiry_minutes__lte=PAYMENT_EXPIRY_MINUTES_MAX),
                name="merchant_payment_expiry_minutes_range",
            ),
            models.CheckConstraint(
                condition=models.Q(brand_accent_color="") | models.Q(brand_accent_color__regex=ACCENT_COLOR_RE),
                name="merchant_brand_accent_color_hex",
            ),
        ]

    def __str__(self):
        return f"{self.name} <{self.email}>"


class MerchantLogo(models.Model):
    """The checkout logo: an image decoded, bounded and re-encoded as WebP by merchants.branding (no metadata left),
    kept in the database (a few tens of KB at most: in the backups with everything else, no media volume to serve or
    scope) and apart from Merchant, whose row is read on every API call. The checkout inlines it as a data: URL."""

    merchant = models.OneToOneField(Merchant, primary_key=True, on_delete=models.CASCADE, related_name="logo")
    image = models.BinaryField()
    content_type = models.CharField(max_length=32, default="image/webp")
    width = models.PositiveSmallIntegerField()
    height = models.PositiveSmallIntegerField()
    sha256 = models.CharField(max_length=64)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"logo of {self.merchant_id} ({self.width}x{self.height})"


class NotificationSent(models.Model):
    """An email to a merchant that must go out once (merchants.emails): the row is claimed in the transaction that
    sends it, so a task run twice (a retry, two beat ticks) finds it and sends nothing. `key` says which one: the
    day of a daily summary, the intent of a payment email, the endpoint and incident of a failing-webhook email."""

    class Kind(models.TextChoices):
        PAYMENT_SUCCEEDED = "payment_succeeded"
        WEBHOOK_FAILING = "webhook_failing"
        DAILY_SUMMARY = "daily_summary"

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    key = models.CharField(max_length=128)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["merchant", "kind", "key"], name="notification_sent_once")]

    def __str__(self):
        return f"{self.kind} {self.key} to {self.merchant_id}"


class Role(models.TextChoices):
    """A team member's role; what each may do is merchants.permissions.MATRIX."""

    OWNER = "owner", "Owner"
    ADMIN = "admin", "Administrator"
    DEVELOPER = "developer", "Developer"
    FINANCE = "finance", "Finance"
    VIEWER = "viewer", "Viewer"


class Membership(models.Model):
    """A login's place in a merchant's team. A login may belong to several merchants (the portal's switcher)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["merchant", "user"], name="membership_unique_user")]
        indexes = [models.Index(fields=["user", "created"], name="membership_user_idx")]

    def __str__(self):
        return f"{self.user_id} {self.role} of {self.merchant_id}"


def _invitation_id():
    return new_id("inv", 16)


class Invitation(models.Model):
    """An invitation by email to join a merchant's team with a role. The link's token is shown once (in the email)
    and stored as its SHA-256 only; it is used once, before `expires_at`."""

    id = models.CharField(primary_key=True, max_length=32, default=_invitation_id, editable=False)
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["merchant", "-created"], name="invitation_list_idx")]

    def __str__(self):
        return f"{self.id} {self.email} as {self.role}"


class ApiKey(models.Model):
    class Kind(models.TextChoices):
        SECRET = "secret", "Secret"
        RESTRICTED = "restricted", "Restricted"
        PUBLISHABLE = "publishable", "Publishable"

    PREFIXES = {Kind.SECRET: "sk", Kind.RESTRICTED: "rk", Kind.PUBLISHABLE: "pk"}

    id = models.CharField(primary_key=True, max_length=32, default=_key_id, editable=False)
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="api_keys")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    livemode = models.BooleanField()
    name = models.CharField(max_length=100, blank=True)
    # SHA-256 of the whole key; the key itself is shown once and never stored.
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    redacted = models.CharField(max_length=40, editable=False, help_text="e.g. sk_test_...a1b2")
    # For restricted keys: {"payment_intents": "write", "charges": "read", ...}
    permissions = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Set when the key is rolled or revoked.")
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["merchant", "livemode", "kind"])]

    def __str__(self):
        return self.redacted


class IdempotencyRecord(models.Model):
    """The first response to a POST with an `Idempotency-Key`, replayed for 24 hours."""

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE)
    livemode = models.BooleanField()
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["merchant", "livemode", "key"], name="idempotency_unique_key"),
        ]


def _webhook_endpoint_id():
    return new_id("we")


class WebhookEndpoint(models.Model):
    """Where a merchant wants its events POSTed (the `/v1/webhook_endpoints` object). Deliveries live in `payments`.

    `secret` (whsec_...) signs every delivery; it is shown once, on create. While a secret is rolled the previous one
    keeps signing beside the new one until `previous_secret_expires_at` (24 hours by default)."""

    class Status(models.TextChoices):
        ENABLED = "enabled"
        DISABLED = "disabled"

    id = models.CharField(primary_key=True, max_length=40, default=_webhook_endpoint_id, editable=False)
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    livemode = models.BooleanField()
    url = models.URLField(max_length=2048)
    description = models.CharField(max_length=5000, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    enabled_events = models.JSONField(default=list, help_text='Event types, or ["*"] for all of them.')
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ENABLED)
    disabled_reason = models.CharField(max_length=200, blank=True, default="")
    secret = EncryptedTextField(editable=False)  # sealed at rest (merchants.secrets)
    previous_secret = EncryptedTextField(blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # When deliveries to it started failing without a success since (None: healthy); 3 days of it disables it.
    failing_since = models.DateTimeField(null=True, blank=True)
    # Failed attempts since the last success (0 when healthy): at GATEWAY_WEBHOOK_FAILING_EMAIL_AFTER the merchant
    # is emailed, once per incident (payments.notifications).
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    deleted = models.BooleanField(default=False, help_text="Deleted through the API: no longer listed nor delivered.")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["merchant", "livemode", "-created", "-id"], name="webhook_endpoint_list_idx")]

    def __str__(self):
        return f"{self.id} {self.url}"


class SecretsKey(models.Model):
    """The data key that encrypts the application secrets (merchants.secrets), wrapped by GATEWAY_SECRETS_KEK:
    never stored in clear. `kek_fingerprint` names the KEK that wrapped it (`rotate_secrets_kek` re-wraps it)."""

    id = models.CharField(primary_key=True, max_length=8, editable=False)
    wrapped_dek = models.BinaryField(editable=False)
    kek_fingerprint = models.CharField(max_length=16, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    rewrapped = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"secrets data key {self.id} (KEK {self.kek_fingerprint})"


def _totp_field(name):
    return TOTPDevice._meta.get_field(name).clone()


class EncryptedTotpDevice(TimestampMixin, ThrottlingMixin, Device):
    """django-otp's TOTP device (the same fields and verification, borrowed from `TOTPDevice`) with its seed
    encrypted at rest: `key` (hex, as django-otp's) is sealed and bound to the device's user. The portal enrols and
    verifies with this model (merchants.views, merchants.forms); django-otp's own `otp_totp` table stays empty."""

    key = EncryptedTextField(default=default_key, editable=False, bind_to="user",
                             help_text="The hex-encoded secret key, encrypted at rest.")
    step = _totp_field("step")
    t0 = _totp_field("t0")
    digits = _totp_field("digits")
    tolerance = _totp_field("tolerance")
    drift = _totp_field("drift")
    last_t = _totp_field("last_t")

    class Meta(Device.Meta):
        verbose_name = "TOTP device"

    bin_key = TOTPDevice.bin_key
    verify_token = TOTPDevice.verify_token
    get_throttle_factor = TOTPDevice.get_throttle_factor
    config_url = TOTPDevice.config_url
    _read_str_from_settings = TOTPDevice._read_str_from_settings
