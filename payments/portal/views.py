"""Portal pages of payments: the filtered list (keyset pages), its CSV export, an intent's detail, cancel."""
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from gateway.errors import DomainError

from .. import services
from ..models import PaymentIntent
from ..views import format_base_units, format_fiat
from . import selectors
from .access import found_or_404, portal_page, portal_scope
from .export import csv_response, csv_rows
from .forms import PaymentCancelForm, PaymentFilterForm, UnmatchedFilterForm


def _narrowed(intents, filters: dict):
    """The intents the list's filters (PaymentFilterForm's cleaned data) select; a search by transaction hash reads
    the networks' ids first."""
    return selectors.payment_intents_filter(
        intents, filters=filters, network_ids=selectors.network_ids() if filters.get("q_kind") == "tx" else [])


def _filtered(request):
    """The form of the list's filters and, when it is valid, the merchant's intents it selects (else None)."""
    merchant, livemode = portal_scope(request)
    form = PaymentFilterForm(request.GET)
    if not form.is_valid():
        return form, None
    return form, _narrowed(selectors.payment_intents_list(merchant=merchant, livemode=livemode), form.cleaned_data)


def _row(intent) -> dict:
    charge = intent.latest_charge
    return {"intent": intent, "amount": format_fiat(intent.amount, intent.currency),
            "network": charge.transfer.network if charge else None,
            "token": charge.transfer.token.currency.upper() if charge and charge.transfer.token else ""}


def filtered_list_render(request, template: str, *, form, page, row, livemode: bool):
    """A filtered list page (payments here; settlements' payouts and refunds): `row(obj)` is what the template shows
    of each object of `page` (selectors.filtered_keyset_page); a page that could not be read (`page` None: the
    filters or the cursor are not valid) shows the form's errors with a 400."""
    return render(request, template, {
        "form": form, "page": page, "rows": [row(obj) for obj in page.rows] if page else [],
        "filter_query": form.filter_query(), "livemode": livemode,
    }, status=200 if page is not None else 400)


@require_safe
@portal_page("payments.view")
def payment_list(request):
    merchant, livemode = portal_scope(request)
    form = PaymentFilterForm(request.GET)
    intents = selectors.payment_intents_list(merchant=merchant, livemode=livemode)
    page = selectors.filtered_keyset_page(form, intents, merchant=merchant, livemode=livemode, narrow=_narrowed)
    return filtered_list_render(request, "portal/payments/list.html", form=form, page=page, row=_row,
                                livemode=livemode)


@require_safe
@portal_page("payments.export")
def payment_export(request):
    form, qs = _filtered(request)
    if qs is None:
        return render(request, "portal/payments/list.html", {
            "form": form, "page": None, "rows": [], "filter_query": form.filter_query(),
            "livemode": portal_scope(request)[1],
        }, status=400)
    return csv_response(csv_rows(qs), name="payments", livemode=portal_scope(request)[1])


def _intent(request, intent_id: str) -> PaymentIntent:
    merchant, livemode = portal_scope(request)
    return found_or_404(intent_id, "pi", lambda pk: selectors.payment_intent_for_portal(
        merchant=merchant, livemode=livemode, intent_id=pk))


def _token_amount(transfer) -> str:
    if transfer.token is None:
        return f"{format_base_units(transfer.amount_base_units, transfer.network.native_decimals)} " \
               f"{transfer.network.native_currency.upper()}"
    return f"{format_base_units(transfer.amount_base_units, transfer.token.decimals)} {transfer.token.currency.upper()}"


def _transfer_view(transfer) -> dict:
    network = transfer.network
    return {"network": network, "paid": _token_amount(transfer), "tx_hash": transfer.tx_hash,
            "tx_url": network.explorer_link("tx", transfer.tx_hash), "block": transfer.block_number,
            "from_address": transfer.from_address, "from_url": network.explorer_link("address", transfer.from_address),
            "final": transfer.is_final, "orphaned": transfer.orphaned_at is not None}


@require_safe
@portal_page("payments.view")
def payment_detail(request, intent_id: str):
    intent = _intent(request, intent_id)
    detail = selectors.payment_intent_detail(intent=intent)
    return render(request, "portal/payments/detail.html", {
        "intent": intent, "amount": format_fiat(intent.amount, intent.currency),
        "amount_received": format_fiat(intent.amount_received, intent.currency),
        "charges": [{"charge": c, "amount": format_fiat(c.amount, c.currency), **_transfer_view(c.transfer)}
                    for c in detail.charges],
        "events": detail.events, "deliveries": detail.deliveries,
        "unmatched": [{"deposit": d, **_transfer_view(d.transfer)} for d in detail.unmatched],
        "cancelable": intent.status in services.OPEN_STATUSES,
        "amount_refunded": format_fiat(intent.amount_refunded, intent.currency),
        "refundable": any(c.status == c.Status.SUCCEEDED and c.amount_refunded < c.amount for c in detail.charges),
    })


@never_cache
@require_http_methods(["GET", "POST"])
@portal_page("payments.write")
def payment_cancel(request, intent_id: str):
    """GET: the confirmation; POST: the cancel, with the same service as `POST /v1/payment_intents/{id}/cancel`."""
    intent = _intent(request, intent_id)
    form = PaymentCancelForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.payment_intent_cancel(intent=intent, reason=form.cleaned_data["cancellation_reason"])
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Payment {intent.pk} canceled.")
                return redirect("portal:payment-detail", intent_id=intent.pk)
        status = 400
    return render(request, "portal/payments/cancel.html", {
        "intent": intent, "amount": format_fiat(intent.amount, intent.currency), "form": form,
        "cancelable": intent.status in services.OPEN_STATUSES,
    }, status=status)


@require_safe
@portal_page("payments.view")
def unmatched_list(request):
    """Deposits that paid no intent, newest first (keyset pages), filtered by why. Refunding one is settlements'
    page (`portal:unmatched-refund`, linked by URL name: payments does not import settlements)."""
    merchant, livemode = portal_scope(request)
    form = UnmatchedFilterForm(request.GET)
    deposits = selectors.unmatched_deposits_list(merchant=merchant, livemode=livemode)
    page = selectors.filtered_keyset_page(form, deposits, merchant=merchant, livemode=livemode,
                                          match={"reason": "reason"})
    rows = []
    for deposit in page.rows if page else []:
        assignment = getattr(deposit, "assignment", None)
        rows.append({"deposit": deposit, "assigned_to": assignment.payment_intent_id if assignment else "",
                     "refundable": not deposit.refund_reference and assignment is None,
                     **_transfer_view(deposit.transfer)})
    return render(request, "portal/payments/unmatched.html", {
        "form": form, "page": page, "rows": rows, "filter_query": form.filter_query(), "livemode": livemode,
    }, status=200 if page is not None else 400)
