"""Limits on money out and the frozen account (docs/money-out.md, "Approvals"): called by payout_create and
refund_create inside their transactions.

    money_out_requester        who asked (the user recorded on the payout or refund, and the audit trail's name)
    money_out_value_minor      base units -> minor units of the pegged fiat, rounded UP (integers only)
    money_out_hold_reasons     the limits a new payout or refund goes over (empty: it may go without approval); what
                               goes without approval is added to the day's totals under their row locks
    money_out_volume_add       an approved one counts for the day too
    merchant_frozen            the merchant's freeze, read under FOR SHARE (a freeze waits for the transaction)

Lock order: every caller has locked its balance rows (settlements.services.balances_lock; a Charge before them)
first; the daily totals are locked last, the merchant's before the operator's, so creations never deadlock with each
other or with the senders (sending address, then balance rows)."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit.actors import ActorType, actor_of
from gateway.errors import DomainError
from merchants.models import Merchant
from payments.pricing import FIAT_EXPONENTS

from .approval_models import MoneyOutDailyVolume

AWAITING_APPROVAL = "awaiting_approval"
ACCOUNT_FROZEN = "account_frozen"

# The reasons a payout or refund is held (`approval_reasons`).
MERCHANT_PER_TRANSACTION = "merchant_per_transaction"
MERCHANT_PER_DAY = "merchant_per_day"
OPERATOR_PER_TRANSACTION = "operator_per_transaction"
OPERATOR_PER_DAY = "operator_per_day"
NOT_MEASURABLE = "currency_not_measurable"


@dataclass(frozen=True)
class Requester:
    user_id: int | None
    label: str


def money_out_requester(*, actor, merchant) -> Requester:
    """The login that asked: an API key's merchant login (Merchant.user), the portal user, the staff user; the
    system (a task, a command) has none."""
    who = actor_of(actor)
    label = f"{who.type}:{who.id}"[:140]
    if who.type == ActorType.API_KEY:
        return Requester(user_id=merchant.user_id, label=label)
    if who.type in (ActorType.STAFF, ActorType.MERCHANT_USER):
        return Requester(user_id=int(who.id), label=label)
    return Requester(user_id=None, label=label)


def account_frozen_error(*, what: str) -> DomainError:
    return DomainError(code=ACCOUNT_FROZEN, status_code=403,
                       message=f"This account is frozen: no {what} can be made while it is. Contact the gateway's "
                               f"support.")


def merchant_frozen(*, merchant_id: str) -> bool:
    """Whether the merchant is frozen, its row read FOR SHARE: a freeze (FOR UPDATE) committed before is seen, and
    one asked meanwhile waits for this transaction, so nothing is created or sent after a freeze took effect."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT frozen_at IS NOT NULL FROM merchants_merchant WHERE id = %s FOR SHARE", [merchant_id])
        row = cursor.fetchone()
    return bool(row and row[0])


def money_out_value_minor(*, amount_base_units: int, decimals: int, currency: str) -> int | None:
    """What `amount_base_units` of a token pegged to `currency` is worth in its minor units, rounded UP (a limit is
    never passed by a fraction of a cent): integers only. None when the currency is not a fiat we price in."""
    exponent = FIAT_EXPONENTS.get(currency)
    if exponent is None:
        return None
    numerator = int(amount_base_units) * 10**exponent
    return -(-numerator // 10**decimals)


def _limits(merchant) -> list[tuple[str, str, int | None, int | None]]:
    """(scope, currency, per transaction, per day) of the merchant's limits (read now: the caller's instance may be
    an API key's cached one) and the operator's."""
    current = Merchant.objects.filter(pk=merchant.pk).values_list(
        "limit_currency", "limit_money_out_per_transaction_minor", "limit_money_out_per_day_minor").get()
    return [
        (merchant.pk, *current),
        (MoneyOutDailyVolume.OPERATOR, settings.GATEWAY_MONEY_OUT_LIMIT_CURRENCY,
         settings.GATEWAY_MONEY_OUT_LIMIT_PER_TRANSACTION_MINOR, settings.GATEWAY_MONEY_OUT_LIMIT_PER_DAY_MINOR),
    ]


def _volume_lock(*, scope: str, livemode: bool, currency: str, day) -> MoneyOutDailyVolume:
    table = MoneyOutDailyVolume._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} (scope, livemode, currency, day, amount_minor) VALUES (%s, %s, %s, %s, 0) "
                       f"ON CONFLICT (scope, livemode, currency, day) DO NOTHING", [scope, livemode, currency, day])
    return MoneyOutDailyVolume.objects.select_for_update().get(scope=scope, livemode=livemode, currency=currency,
                                                               day=day)


def money_out_hold_reasons(*, merchant, livemode: bool, currency: str, amount_base_units: int,
                           decimals: int | None) -> list[str]:
    """The limits this payout or refund goes over, checked in the caller's transaction after its balance rows are
    locked. Empty: it goes without approval, and its value is added to the day's totals (the merchant's, the
    operator's; locked in that order), so concurrent ones never pass a daily limit without an approval. Money out
    that cannot be measured in a limit's currency (another currency, a native coin) is held while any limit is set.
    What is held adds nothing now (money_out_volume_add when approved)."""
    value = None if decimals is None else money_out_value_minor(amount_base_units=amount_base_units,
                                                                decimals=decimals, currency=currency)
    reasons: list[str] = []
    daily = []
    for (scope, limit_currency, per_transaction, per_day), (tx_reason, day_reason) in zip(
            _limits(merchant), [(MERCHANT_PER_TRANSACTION, MERCHANT_PER_DAY),
                                (OPERATOR_PER_TRANSACTION, OPERATOR_PER_DAY)]):
        if per_transaction is None and per_day is None:
            continue
        if value is None or currency != limit_currency:
            if NOT_MEASURABLE not in reasons:
                reasons.append(NOT_MEASURABLE)
            continue
        if per_transaction is not None and value > per_transaction:
            reasons.append(tx_reason)
        if per_day is not None:
            daily.append((scope, limit_currency, per_day, day_reason))
    if reasons or not daily:
        return reasons
    today = timezone.now().date()
    rows = []
    for scope, limit_currency, per_day, day_reason in daily:
        row = _volume_lock(scope=scope, livemode=livemode, currency=limit_currency, day=today)
        if row.amount_minor + value > per_day:
            reasons.append(day_reason)
        rows.append(row)
    if not reasons:
        for row in rows:
            _volume_increment(row, value)
    return reasons


def _volume_increment(row: MoneyOutDailyVolume, value: int) -> None:
    row.amount_minor += value
    row.save(update_fields=["amount_minor"])


def money_out_volume_add(*, merchant, livemode: bool, currency: str, amount_base_units: int,
                         decimals: int | None) -> None:
    """An approved payout or refund counts in today's totals (it may take them past the limit: a person decided)."""
    value = None if decimals is None else money_out_value_minor(amount_base_units=amount_base_units,
                                                                decimals=decimals, currency=currency)
    if value is None:
        return
    today = timezone.now().date()
    for scope, limit_currency, _, per_day in _limits(merchant):
        if per_day is not None and currency == limit_currency:
            _volume_increment(_volume_lock(scope=scope, livemode=livemode, currency=limit_currency, day=today),
                              value)
