"""Every write to a PaymentIntent: one function per transition, each atomic, each writing its event row."""
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from gateway.db import insert_sql, insert_unnest_sql, mark_saved, returning_pk
from gateway.errors import DomainError
from gateway.metrics import PAYMENT_TRANSITIONS
from gateway.ids import random_token
from gateway.metadata import metadata_merge
from merchants.models import Merchant
from wallets.networks import active_networks
from wallets.models import DepositAddress
from wallets.services import deposit_address_allocate, deposit_address_reserve

from .events import build_event, event_record
from .models import Event, PaymentDailyVolume, PaymentIntent, PaymentOption
from .presenters import payment_intent_json
from .pricing import amount_due_base_units

Status = PaymentIntent.Status
OPEN_STATUSES = (Status.REQUIRES_CONFIRMATION, Status.REQUIRES_ACTION)
MERCHANT_CANCELLATION_REASONS = ("requested_by_customer", "abandoned", "duplicate", "fraudulent")


@dataclass(frozen=True)
class RequestContext:
    """Where a change came from, recorded on its events."""

    request_id: str = ""
    idempotency_key: str = ""


@dataclass
class PaymentIntentInput:
    amount: int
    currency: str
    networks: list[str] = field(default_factory=list)  # API names; empty: the merchant's default
    confirm: bool = True
    description: str = ""
    metadata: dict = field(default_factory=dict)
    receipt_email: str = ""
    return_url: str = ""


def unexpected_state(intent: PaymentIntent, action: str) -> DomainError:
    return DomainError(
        code="payment_intent_unexpected_state",
        message=f"You cannot {action} this PaymentIntent because it has a status of {intent.status}.",
    )


def default_networks(*, merchant: Merchant, livemode: bool) -> list[str]:
    available = active_networks(livemode=livemode)
    if merchant.enabled_networks:
        return [name for name in merchant.enabled_networks if name in available]
    return list(available)


def _snapshot(intent: PaymentIntent) -> dict:
    return payment_intent_json(intent)


def _event(intent: PaymentIntent, type: str, ctx: RequestContext, **kwargs) -> Event:
    return event_record(
        merchant=intent.merchant, livemode=intent.livemode, type=type, obj_id=intent.id,
        snapshot=_snapshot(intent), request_id=ctx.request_id, idempotency_key=ctx.idempotency_key, **kwargs,
    )


def _payment_options(intent: PaymentIntent) -> list[PaymentOption]:
    """The exact amount due in every token of the intent's networks (unsaved); refuses before anything is written."""
    networks = active_networks(livemode=intent.livemode)
    options = []
    for name in intent.networks:
        for token in networks[name].tokens:
            if token.pegged_currency != intent.currency:
                continue
            if intent.merchant.enabled_tokens and token.currency not in intent.merchant.enabled_tokens:
                continue  # the merchant's accepted tokens (portal settings)
            options.append(PaymentOption(
                payment_intent=intent, token=token,
                amount_base_units=amount_due_base_units(
                    amount_minor=intent.amount, currency=intent.currency, token_decimals=token.decimals
                ),
            ))
    if not options:
        raise DomainError(
            code="payment_intent_no_supported_tokens",
            message=f"No active token on the requested networks accepts {intent.currency.upper()}.",
            param="payment_method_options[crypto][deposit_options][networks]",
        )
    intent._prefetched_objects_cache = {"options": options}
    return options


def _deposit_details(intent: PaymentIntent, *, write_address: bool = True) -> None:
    """A fresh address for the intent and the time it waits for funds (in the caller's transaction). With
    `write_address=False` the address row is left for the caller to insert (with_pk) with its own rows."""
    allocate = deposit_address_allocate if write_address else deposit_address_reserve
    intent.deposit_address = allocate(merchant=intent.merchant)
    intent.expires_at = timezone.now() + timedelta(minutes=intent.merchant.payment_expiry_minutes)


def _save_options(intent: PaymentIntent, options: list[PaymentOption]) -> None:
    PaymentOption.objects.bulk_create(options)
    intent._prefetched_objects_cache = {"options": options}


def _created_events(intent: PaymentIntent, snapshot: dict, ctx: RequestContext) -> list[Event]:
    events = [("payment_intent.created", snapshot)]
    if intent.status == Status.REQUIRES_ACTION:
        # The `created` event shows the intent as it was before confirmation, as Stripe's does.
        events = [
            ("payment_intent.created", {**snapshot, "status": Status.REQUIRES_CONFIRMATION, "next_action": None}),
            ("payment_intent.requires_action", snapshot),
        ]
    return [
        build_event(
            merchant=intent.merchant, livemode=intent.livemode, type=type, obj_id=intent.id, snapshot=obj,
            sequence=i + 1, request_id=ctx.request_id, idempotency_key=ctx.idempotency_key,
        )
        for i, (type, obj) in enumerate(events)
    ]


def account_frozen_error() -> DomainError:
    return DomainError(code="account_frozen", status_code=403,
                       message="This account is frozen and cannot take payments at the moment. Contact the gateway's "
                               "support.")


def _risk_check(*, merchant: Merchant, data: PaymentIntentInput) -> None:
    """The merchant's risk controls that need no write: frozen, currency of the limits, limit per payment."""
    if merchant.is_frozen:
        raise account_frozen_error()
    if not merchant.has_limits:
        return
    if data.currency != merchant.limit_currency:
        raise DomainError(code="currency_not_allowed", param="currency",
                          message=f"This account's payment limits are in {merchant.limit_currency}: create payment "
                                  f"intents in {merchant.limit_currency}.")
    limit = merchant.limit_per_payment_minor
    if limit is not None and data.amount > limit:
        raise DomainError(code="amount_too_large", param="amount",
                          message=f"Amount must be at most {limit} (in the smallest unit of {data.currency}) for this "
                                  f"account.")


def _daily_volume_add(*, merchant: Merchant, livemode: bool, currency: str, amount: int) -> None:
    """Add the amount to today's running total (UTC) of a merchant with a daily limit, or refuse when it would go
    over; call inside the creation's transaction (its row lock orders concurrent creations; a refusal rolls the
    increment back with everything else: payment_intent_create gives merchants with a daily limit a savepoint for
    it, so a refusal leaves a caller's transaction usable)."""
    limit = merchant.limit_per_day_minor
    if limit is None:
        return
    table = PaymentDailyVolume._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (merchant_id, livemode, currency, day, amount_minor) VALUES (%s, %s, %s, %s, %s) "
            f"ON CONFLICT (merchant_id, livemode, currency, day) DO UPDATE "
            f"SET amount_minor = {table}.amount_minor + EXCLUDED.amount_minor RETURNING amount_minor",
            [merchant.pk, livemode, currency, timezone.now().date(), amount])
        if cursor.fetchone()[0] > limit:
            raise DomainError(code="daily_limit_exceeded", param="amount",
                              message=f"This payment would take the account's payment intents of today over its "
                                      f"daily limit of {limit} (in the smallest unit of {currency}).")


def payment_intent_create(
    *, merchant: Merchant, livemode: bool, data: PaymentIntentInput, ctx: RequestContext = RequestContext()
) -> PaymentIntent:
    """A new intent with its payment options (when confirmed) and its events, in one transaction.

    Every refusal comes before anything is written. The JSON built for the events is left on the returned intent,
    so that presenting it (payments.presenters.payment_intent_json) does not build it a second time."""
    _risk_check(merchant=merchant, data=data)
    networks = data.networks or default_networks(merchant=merchant, livemode=livemode)
    if not networks:
        raise DomainError(
            code="payment_intent_no_networks",
            message="No network is enabled for this account in this mode.",
            param="payment_method_options[crypto][deposit_options][networks]",
        )
    intent = PaymentIntent(
        merchant=merchant, livemode=livemode, status=Status.REQUIRES_CONFIRMATION, amount=data.amount,
        currency=data.currency, description=data.description, metadata=data.metadata,
        receipt_email=data.receipt_email, return_url=data.return_url, networks=networks,
        idempotency_key=ctx.idempotency_key,
    )
    intent.client_secret = f"{intent.id}_secret_{random_token(24)}"
    options = _payment_options(intent) if data.confirm else []
    # A merchant with a daily limit: a transaction (or savepoint) that its refusal rolls back whole.
    limited = transaction.atomic() if merchant.limit_per_day_minor is not None else nullcontext()
    # No savepoint otherwise: nothing below refuses, and a failure of the database aborts the enclosing transaction.
    with limited, transaction.atomic(savepoint=False):
        _daily_volume_add(merchant=merchant, livemode=livemode, currency=data.currency, amount=data.amount)
        if data.confirm:
            _deposit_details(intent, write_address=False)
            intent.status = Status.REQUIRES_ACTION
        # The address, the intent, its options and its events as ONE statement (gateway.db): one round-trip after
        # the one that draws the address. pre_save sets `created` and `updated`.
        ctes, params = [], []
        if data.confirm:
            address_sql, address_params = insert_sql(DepositAddress, [intent.deposit_address], with_pk=True)
            ctes.append(f"address AS ({address_sql})")
            params += address_params
        intent_sql, intent_params = insert_sql(PaymentIntent, [intent])
        ctes.append(f"intent AS ({intent_sql})")
        params += intent_params
        events = _created_events(intent, payment_intent_json(intent), ctx)
        events_sql, events_params = insert_sql(Event, events)
        params += events_params
        if options:
            ctes.append(f"events AS ({events_sql})")
            options_sql, options_params = insert_unnest_sql(PaymentOption, options)
            params += options_params
            sql = f"WITH {', '.join(ctes)} {options_sql}{returning_pk(PaymentOption)}"
        else:
            sql = f"WITH {', '.join(ctes)} {events_sql}"
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for option, (pk,) in zip(options, cursor.fetchall() if options else ()):
                option.pk = pk
        mark_saved(*([intent.deposit_address] if data.confirm else []), intent, *events, *options)
    return intent


def _locked(intent_id: str) -> PaymentIntent:
    # of=self: the merchant row is read, not locked (money-out creation reads it FOR SHARE; locking it here too
    # made a deadlock cycle with refund_create, which holds it shared and then updates the intent).
    return PaymentIntent.objects.select_for_update(of=("self",)).select_related("merchant").get(pk=intent_id)


@transaction.atomic
def payment_intent_confirm(*, intent: PaymentIntent, ctx: RequestContext = RequestContext()) -> PaymentIntent:
    intent = _locked(intent.pk)
    if intent.status != Status.REQUIRES_CONFIRMATION:
        raise unexpected_state(intent, "confirm")
    if Merchant.objects.filter(pk=intent.merchant_id, frozen_at__isnull=False).exists():
        raise account_frozen_error()
    options = _payment_options(intent)
    _deposit_details(intent)
    intent.status = Status.REQUIRES_ACTION
    intent.save(update_fields=["deposit_address", "expires_at", "status", "updated"])
    _save_options(intent, options)
    _event(intent, "payment_intent.requires_action", ctx, previous_attributes={"status": Status.REQUIRES_CONFIRMATION})
    return intent


@transaction.atomic
def payment_intent_update(
    *, intent: PaymentIntent, description: str | None = None, metadata: dict | None = None,
    clear_metadata: bool = False, receipt_email: str | None = None,
) -> PaymentIntent:
    """Metadata merges as in Stripe: an empty value unsets a key, `clear_metadata` unsets them all."""
    intent = _locked(intent.pk)
    fields = ["updated"]
    if clear_metadata or metadata:
        intent.metadata = metadata_merge(intent.metadata, metadata, clear=clear_metadata)
        fields.append("metadata")
    if description is not None:
        intent.description = description
        fields.append("description")
    if receipt_email is not None:
        intent.receipt_email = receipt_email
        fields.append("receipt_email")
    intent.save(update_fields=fields)
    return intent


@transaction.atomic
def payment_intent_cancel(
    *, intent: PaymentIntent, reason: str = "", ctx: RequestContext = RequestContext()
) -> PaymentIntent:
    intent = _locked(intent.pk)
    if intent.status not in OPEN_STATUSES:
        raise unexpected_state(intent, "cancel")
    previous = intent.status
    intent.status = Status.CANCELED
    intent.cancellation_reason = reason
    intent.canceled_at = timezone.now()
    intent.save(update_fields=["status", "cancellation_reason", "canceled_at", "updated"])
    _event(intent, "payment_intent.canceled", ctx, previous_attributes={"status": previous})
    transaction.on_commit(PAYMENT_TRANSITIONS.labels(Status.CANCELED).inc)
    return intent


@transaction.atomic
def payment_intent_expire(*, intent_id: str) -> PaymentIntent | None:
    """Cancel an open intent whose time is up. Safe to run twice: a second run finds it no longer open."""
    intent = _locked(intent_id)
    if intent.status not in OPEN_STATUSES or intent.expires_at is None or intent.expires_at > timezone.now():
        return None
    previous = intent.status
    intent.status = Status.CANCELED
    intent.cancellation_reason = PaymentIntent.CancellationReason.EXPIRED
    intent.canceled_at = timezone.now()
    intent.save(update_fields=["status", "cancellation_reason", "canceled_at", "updated"])
    _event(intent, "payment_intent.canceled", RequestContext(), previous_attributes={"status": previous})
    transaction.on_commit(PAYMENT_TRANSITIONS.labels(Status.CANCELED).inc)
    return intent
