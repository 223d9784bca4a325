"""Portal pages of the merchant's money: the balance with its balance transactions (filters, keyset pages, CSV),
payouts (list, detail, create, cancel), refunds (list, detail, cancel) and refunding a payment or an unmatched
deposit. Every query is scoped to the session's merchant and mode; every write is one service call."""
from datetime import datetime, time, timedelta, timezone

from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.timezone import now
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from gateway.errors import DomainError
from merchants.idempotency import portal_form_claim
from merchants.permissions import role_can
from merchants.portal import portal_livemode, portal_merchant, portal_required
from payments.models import Charge, Event, PaymentIntent, UnmatchedDeposit
from payments.portal.export import cell, csv_response, csv_writer
from payments.portal.selectors import filtered_keyset_page, keyset_chunks, keyset_page
from payments.portal.views import filtered_list_render
from payments.views import format_base_units, format_fiat

from .. import payouts, selectors
from ..models import JournalTransaction, Payout
from ..refunds import selectors as refund_selectors
from ..refunds import services as refund_services
from ..refunds.models import Refund
from ..refunds.presenters import claim_url
from .forms import (BalanceTransactionFilterForm, PayoutCreateForm, PayoutFilterForm, RefundCreateForm,
                    RefundFilterForm, payout_assets, refusal_to_form)


def _scope(request):
    return portal_merchant(request), portal_livemode(request)


def _day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def _token_amount(base_units, decimals: int, symbol: str) -> str:
    return f"{format_base_units(int(base_units), decimals)} {symbol.upper()}"


def _tx_hash(row) -> str:
    tx = row.outgoing_transaction
    if tx is None:
        return ""
    attempt = tx.mined_attempt if tx.mined_attempt_id else (tx.current_attempt if tx.current_attempt_id else None)
    return attempt.tx_hash if attempt else ""


def _events(merchant, livemode: bool, object_id: str) -> list[Event]:
    return list(Event.objects.filter(merchant=merchant, livemode=livemode, object_id=object_id)
                .order_by("created", "sequence", "pk"))


# --- Balance ------------------------------------------------------------------------------------------------------

def _transactions(request):
    """The filter form and, when valid, the merchant's balance transactions (journal rows) it selects."""
    merchant, livemode = _scope(request)
    form = BalanceTransactionFilterForm(request.GET)
    if not form.is_valid():
        return form, None, None
    journals = selectors.balance_transaction_journals(merchant=merchant, livemode=livemode)
    bounds = form.journal_bounds(journals)
    if not form.is_valid():
        return form, None, None
    f = form.cleaned_data
    qs = journals
    if f.get("type"):
        qs = qs.filter(kind__in=selectors.TYPE_KINDS[f["type"]])
    if f.get("created_from"):
        qs = qs.filter(created__gte=_day_start(f["created_from"]))
    if f.get("created_to"):
        qs = qs.filter(created__lt=_day_start(f["created_to"]) + timedelta(days=1))
    return form, qs, bounds


def _source_links(merchant, transactions) -> dict[str, str]:
    """source id -> the portal page of it: a Charge's payment, a payout, a refund."""
    charges = [t.source for t in transactions if t.source.startswith("ch_")]
    intents = dict(Charge.objects.filter(merchant=merchant, pk__in=charges).values_list("pk", "payment_intent_id"))
    links = {}
    for t in transactions:
        if t.source in intents:
            links[t.source] = reverse("portal:payment-detail", args=[intents[t.source]])
        elif t.source.startswith("po_"):
            links[t.source] = reverse("portal:payout-detail", args=[t.source])
        elif t.source.startswith("re_"):
            links[t.source] = reverse("portal:refund-detail", args=[t.source])
    return links


def _decimals_of(journals) -> dict[int, int]:
    return {j.id: j.token.decimals for j in journals}


def _transaction_rows(merchant, journals) -> list[dict]:
    decimals = _decimals_of(journals)
    transactions = selectors.balance_transactions_present(journals)
    links = _source_links(merchant, transactions)
    return [{"t": t, "link": links.get(t.source, ""),
             "amount": format_fiat(t.amount, t.currency), "fee": format_fiat(t.fee, t.currency),
             "net": format_fiat(t.net, t.currency),
             "net_token": _token_amount(t.net_base_units, decimals[t.journal_id], t.token_currency)}
            for t in transactions]


@require_safe
@portal_required(permission="balance.view")
def balance(request):
    merchant, livemode = _scope(request)
    currencies = []
    for fiat in selectors.merchant_fiat_balances(merchant=merchant, livemode=livemode):
        currencies.append({
            "currency": fiat.currency.upper(), "available": format_fiat(fiat.available, fiat.currency),
            "pending": format_fiat(fiat.pending, fiat.currency), "reserved": format_fiat(fiat.reserved, fiat.currency),
            "assets": [{"network": a.network, "token": a.token_currency.upper(),
                        "available": format_base_units(a.available, a.decimals),
                        "pending": format_base_units(a.pending, a.decimals),
                        "reserved": format_base_units(a.reserved, a.decimals)} for a in fiat.assets],
        })
    form, qs, bounds = _transactions(request)
    page = keyset_page(qs, **bounds) if qs is not None else None
    return render(request, "portal/settlements/balance.html", {
        "currencies": currencies, "form": form, "page": page, "livemode": livemode,
        "rows": _transaction_rows(merchant, page.rows) if page else [],
        "filter_query": form.filter_query(),
        "page_ids": ({"newer": f"txn_{page.newer}" if page.newer else "",
                      "older": f"txn_{page.older}" if page.older else ""} if page else {}),
    }, status=200 if page is not None else 400)


EXPORT_HEADER = ["id", "created_utc", "type", "reporting_category", "source", "currency", "amount", "fee", "net",
                 "network", "token", "amount_base_units", "fee_base_units", "net_base_units", "net_token", "status",
                 "available_on_utc", "description"]


def _decimal(amount_minor: int) -> str:
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), 100)
    return f"{sign}{whole}.{frac:02d}"


def _utc(moment) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def balance_transaction_csv_rows(qs):
    """The CSV lines (header first) of the balance transactions of `qs`, newest first: the ids read by keyset in
    chunks (payments' export), each chunk presented as the API presents it. Amounts are exact: minor units as
    decimals, and the token's base units as integers and in token units."""
    writer = csv_writer()
    yield writer.writerow(EXPORT_HEADER)
    for chunk in keyset_chunks(qs, fields=["created", "id"]):
        journals = list(JournalTransaction.objects.filter(pk__in=[pk for _, pk in chunk])
                        .select_related("network", "token").order_by("-created", "-id"))
        decimals = _decimals_of(journals)
        lines = []
        for t in selectors.balance_transactions_present(journals):
            lines.append(writer.writerow([
                t.id, _utc(t.created), t.type, t.reporting_category, cell(t.source), t.currency, _decimal(t.amount),
                _decimal(t.fee), _decimal(t.net), t.network, t.token_currency, t.amount_base_units,
                t.fee_base_units, t.net_base_units, format_base_units(t.net_base_units, decimals[t.journal_id]),
                t.status, _utc(t.available_on), cell(t.description or ""),
            ]))
        yield "".join(lines)


@require_safe
@portal_required(permission="balance.export")
def balance_export(request):
    form, qs, _ = _transactions(request)
    if qs is None:
        return balance(request)
    return csv_response(balance_transaction_csv_rows(qs), name="balance-transactions",
                        livemode=portal_livemode(request))


# --- Payouts ------------------------------------------------------------------------------------------------------

def _payout(request, payout_id: str) -> Payout:
    merchant, livemode = _scope(request)
    payout = selectors.payout_get(merchant=merchant, livemode=livemode, payout_id=payout_id)
    if payout is None:
        raise Http404
    return payout


def _payout_view(payout: Payout) -> dict:
    tx_hash = _tx_hash(payout)
    return {"payout": payout, "amount": format_fiat(payout.amount, payout.currency),
            "token_amount": _token_amount(payout.amount_base_units, payout.token.decimals, payout.token.currency),
            "tx_hash": tx_hash, "tx_url": payout.network.explorer_link("tx", tx_hash) if tx_hash else ""}


@require_safe
@portal_required(permission="balance.view")
def payout_list(request):
    merchant, livemode = _scope(request)
    form = PayoutFilterForm(request.GET)
    page = filtered_keyset_page(form, selectors.payouts_for(merchant=merchant, livemode=livemode),
                                merchant=merchant, livemode=livemode, match={"status": "status"})
    return filtered_list_render(request, "portal/settlements/payouts.html", form=form, page=page,
                                row=_payout_view, livemode=livemode)


@require_safe
@portal_required(permission="balance.view")
def payout_detail(request, payout_id: str):
    merchant, livemode = _scope(request)
    payout = _payout(request, payout_id)
    return render(request, "portal/settlements/payout_detail.html", {
        **_payout_view(payout), "events": _events(merchant, livemode, payout.pk),
        "cancelable": payout.status == Payout.Status.PENDING and payout.outgoing_transaction_id is None,
    })


@never_cache
@require_http_methods(["GET", "POST"])
@portal_required(permission="payouts.write")
def payout_create(request):
    """GET: the form; POST: `payouts.payout_create`, the service of `POST /v1/payouts` (its refusals become form
    errors of the field they name, and nothing is written)."""
    merchant, livemode = _scope(request)
    form = PayoutCreateForm(request.POST if request.method == "POST" else None, user=request.user,
                            merchant=merchant, livemode=livemode)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                payout = payouts.payout_create(merchant=merchant, token=data["token"], amount=data["amount_minor"],
                                               currency=data["currency"], description=data["description"],
                                               actor=request.user, request=request)
            except DomainError as exc:
                refusal_to_form(form, exc)
            else:
                messages.success(request, f"Payout {payout.pk} created.")
                return redirect("portal:payout-detail", payout_id=payout.pk)
        status = 400
    balances = {(a.network, a.token_currency): a for fiat in selectors.merchant_fiat_balances(
        merchant=merchant, livemode=livemode) for a in fiat.assets}
    assets = []
    for address in payout_assets(merchant=merchant, livemode=livemode):
        held = balances.get((address.network.api_name, address.token.currency))
        assets.append({"address": address, "cooling": address.usable_after > now(), "available": _token_amount(held.available if held else 0,
                                                                        address.token.decimals,
                                                                        address.token.currency)})
    return render(request, "portal/settlements/payout_create.html", {
        "form": form, "assets": assets, "livemode": livemode,
    }, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
@portal_required(permission="payouts.write")
def payout_cancel(request, payout_id: str):
    payout = _payout(request, payout_id)
    error = ""
    if request.method == "POST":
        try:
            payouts.payout_cancel(payout=payout, actor=request.user, request=request)
        except DomainError as exc:
            error = exc.message
        else:
            messages.success(request, f"Payout {payout.pk} canceled: its amount is available again.")
            return redirect("portal:payout-detail", payout_id=payout.pk)
    return render(request, "portal/settlements/payout_cancel.html", {
        **_payout_view(payout), "error": error,
        "cancelable": payout.status == Payout.Status.PENDING and payout.outgoing_transaction_id is None,
    }, status=400 if error else 200)


# --- Refunds ------------------------------------------------------------------------------------------------------

def _refund(request, refund_id: str) -> Refund:
    merchant, livemode = _scope(request)
    refund = refund_selectors.refund_get(merchant=merchant, livemode=livemode, refund_id=refund_id)
    if refund is None:
        raise Http404
    return refund


def _refund_view(refund: Refund) -> dict:
    tx_hash = _tx_hash(refund)
    token = refund.token
    decimals, symbol = (token.decimals, token.currency) if token else (refund.network.native_decimals,
                                                                      refund.network.native_currency)
    return {"refund": refund, "amount": format_fiat(refund.amount, refund.currency),
            "token_amount": _token_amount(refund.amount_base_units, decimals, symbol),
            "tx_hash": tx_hash, "tx_url": refund.network.explorer_link("tx", tx_hash) if tx_hash else "",
            "cancelable": refund.status in (Refund.Status.REQUIRES_ACTION, Refund.Status.PENDING)
            and refund.outgoing_transaction_id is None}


@require_safe
@portal_required(permission="refunds.view")
def refund_list(request):
    merchant, livemode = _scope(request)
    form = RefundFilterForm(request.GET)
    page = filtered_keyset_page(form, refund_selectors.refunds_for(merchant=merchant, livemode=livemode),
                                merchant=merchant, livemode=livemode,
                                match={"status": "status", "payment_intent": "payment_intent_id"})
    return filtered_list_render(request, "portal/settlements/refunds.html", form=form, page=page,
                                row=_refund_view, livemode=livemode)


@never_cache  # while it waits, the page shows the customer's claim link
@require_safe
@portal_required(permission="refunds.view")
def refund_detail(request, refund_id: str):
    merchant, livemode = _scope(request)
    refund = _refund(request, refund_id)
    return render(request, "portal/settlements/refund_detail.html", {
        **_refund_view(refund), "events": _events(merchant, livemode, refund.pk),
        # The claim link says where the money goes: only roles that may refund see it (not viewers, developers).
        "claim_url": claim_url(refund) if refund.status == Refund.Status.REQUIRES_ACTION and role_can(
            request.portal_membership.role, "refunds.write") else "",
    })


@never_cache
@require_http_methods(["GET", "POST"])
@portal_required(permission="refunds.write")
def refund_cancel(request, refund_id: str):
    refund = _refund(request, refund_id)
    error = ""
    if request.method == "POST":
        try:
            refund_services.refund_cancel(refund=refund, ctx=refund_services.RefundContext(
                actor=request.user, request=request))
        except DomainError as exc:
            error = exc.message
        else:
            messages.success(request, f"Refund {refund.pk} canceled.")
            return redirect("portal:refund-detail", refund_id=refund.pk)
    return render(request, "portal/settlements/refund_cancel.html", {**_refund_view(refund), "error": error},
                  status=400 if error else 200)


def _refund_form_page(request, *, form, subject: dict, status: int):
    return render(request, "portal/settlements/refund_create.html", {"form": form, **subject}, status=status)


def _refund_created(request, refund: Refund):
    if refund.status == Refund.Status.REQUIRES_ACTION:
        sent = f" We emailed it to {refund.receipt_email}." if refund.receipt_email else ""
        messages.success(request, f"Refund {refund.pk} created: it waits for the customer's address on its claim "
                                  f"link (below).{sent}")
    else:
        messages.success(request, f"Refund {refund.pk} created: it will be sent to {refund.destination_address}.")
    return redirect("portal:refund-detail", refund_id=refund.pk)


@never_cache
@require_http_methods(["GET", "POST"])
@portal_required(permission="refunds.write")
def payment_refund(request, intent_id: str):
    """Refund a payment (its latest Charge, as `POST /v1/refunds` with `payment_intent` does), full or partial, with
    the same service: the same rows, events, ledger postings and claim email as the API."""
    merchant, livemode = _scope(request)
    intent = PaymentIntent.objects.filter(merchant=merchant, livemode=livemode, pk=intent_id).first()
    if intent is None:
        raise Http404
    charge = refund_selectors.refundable_charge(merchant=merchant, livemode=livemode, charge_id=None,
                                                payment_intent_id=intent.pk)
    subject = {"intent": intent, "charge": charge,
               "refundable": charge is not None and charge.status == Charge.Status.SUCCEEDED
               and charge.amount_refunded < charge.amount}
    if charge is not None:
        subject.update(charge_amount=format_fiat(charge.amount, charge.currency),
                       refunded=format_fiat(charge.amount_refunded, charge.currency),
                       left=format_fiat(max(charge.amount - charge.amount_refunded, 0), charge.currency))
    form = RefundCreateForm(request.POST if request.method == "POST" else None,
                            currency=charge.currency if charge else "usd")
    if request.method != "POST":
        return _refund_form_page(request, form=form, subject=subject, status=200)
    if charge is None:
        form.add_error(None, "This payment has no charge to refund.")
    elif form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():  # the form's token and the refund: both or neither
                claim, first = portal_form_claim(merchant=merchant, livemode=livemode, token=data["form_token"])
                if not first:  # sent twice (a double click, a resubmitted page): show what the first one did
                    messages.info(request, "This refund was already submitted.")
                    done = claim.response_body.get("refund")
                    return (redirect("portal:refund-detail", refund_id=done) if done
                            else redirect("portal:refund-list"))
                refund = refund_services.refund_create(
                    merchant=merchant, livemode=livemode, charge=charge, amount=data["amount_minor"],
                    reason=data["reason"], destination_address=data["destination_address"],
                    ctx=refund_services.RefundContext(actor=request.user, request=request))
                claim.response_body = {"refund": refund.pk}
                claim.save(update_fields=["response_body"])
        except DomainError as exc:
            refusal_to_form(form, exc)
        else:
            return _refund_created(request, refund)
    return _refund_form_page(request, form=form, subject=subject, status=400)


@never_cache
@require_http_methods(["GET", "POST"])
@portal_required(permission="refunds.write")
def unmatched_refund(request, deposit_id: str):
    """Give an unmatched deposit back, whole, in its own token and network (`refund_create_for_deposit`, as the API's
    `crypto[unmatched_deposit]` and the admin's action do)."""
    merchant, livemode = _scope(request)
    deposit = (UnmatchedDeposit.objects.filter(merchant=merchant, livemode=livemode, pk=deposit_id)
               .select_related("transfer__network", "transfer__token").first())
    if deposit is None:
        raise Http404
    transfer = deposit.transfer
    token = transfer.token
    decimals, symbol = (token.decimals, token.currency) if token else (transfer.network.native_decimals,
                                                                      transfer.network.native_currency)
    subject = {"deposit": deposit, "deposit_amount": _token_amount(transfer.amount_base_units, decimals, symbol),
               "refundable": not deposit.refund_reference}
    form = RefundCreateForm(request.POST if request.method == "POST" else None, currency=None)
    if request.method != "POST":
        return _refund_form_page(request, form=form, subject=subject, status=200)
    if form.is_valid():
        data = form.cleaned_data
        try:
            refund = refund_services.refund_create_for_deposit(
                deposit=deposit, reason=data["reason"], destination_address=data["destination_address"],
                ctx=refund_services.RefundContext(actor=request.user, request=request))
        except DomainError as exc:
            refusal_to_form(form, exc)
        else:
            return _refund_created(request, refund)
    return _refund_form_page(request, form=form, subject=subject, status=400)
