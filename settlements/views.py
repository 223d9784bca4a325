"""Portal pages of money out: the merchant's payout addresses (add and remove, each with a fresh TOTP code)."""
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from gateway.ratelimit import client_address
from merchants.portal import portal_merchant, portal_required

from . import payouts, selectors
from .forms import FreshCodeForm, PayoutAddressAddForm, PayoutScheduleForm
from .models import PayoutSchedule


def _page(request, merchant, *, add_form=None, remove_form=None, schedule_form=None, status=200):
    return render(request, "portal/payout_addresses.html", {
        "merchant": merchant,
        "addresses": selectors.payout_addresses_for(merchant=merchant),
        "add_form": add_form or PayoutAddressAddForm(user=request.user),
        "remove_form": remove_form or FreshCodeForm(user=request.user, auto_id=False),
        "schedule_form": schedule_form or PayoutScheduleForm(
            instance=PayoutSchedule.objects.filter(merchant=merchant).first()),
    }, status=status)


@portal_required(permission="payout_addresses.write")
def payout_addresses(request):
    merchant = portal_merchant(request)
    if request.method != "POST":
        return _page(request, merchant)
    form = PayoutAddressAddForm(request.POST, user=request.user)
    if not form.is_valid():
        return _page(request, merchant, add_form=form, status=400)
    row = payouts.payout_address_add(merchant=merchant, token=form.cleaned_data["token"],
                                     address=form.cleaned_data["address"], user=request.user,
                                     client_ip=client_address(request) or "", request=request)
    messages.success(request, f"Payout address added; payouts can go to it from "
                              f"{row.usable_after:%Y-%m-%d %H:%M} UTC. We emailed {merchant.email}.")
    return redirect("portal:payout-addresses")


@portal_required(permission="payout_addresses.write")
@require_POST
def payout_address_remove(request, address_id: int):
    merchant = portal_merchant(request)
    row = selectors.payout_addresses_for(merchant=merchant).filter(pk=address_id).first()
    if row is None:
        raise Http404
    form = FreshCodeForm(request.POST, user=request.user, auto_id=False)
    if not form.is_valid():
        return _page(request, merchant, remove_form=form, status=400)
    payouts.payout_address_remove(payout_address=row, user=request.user, client_ip=client_address(request) or "",
                                  request=request)
    messages.success(request, "Payout address removed.")
    return redirect("portal:payout-addresses")


@portal_required(permission="payout_addresses.write")
@require_POST
def payout_schedule(request):
    merchant = portal_merchant(request)
    form = PayoutScheduleForm(request.POST)
    if not form.is_valid():
        return _page(request, merchant, schedule_form=form, status=400)
    payouts.payout_schedule_set(merchant=merchant, actor=request.user, request=request, **form.cleaned_data)
    messages.success(request, "Automatic payouts saved.")
    return redirect("portal:payout-addresses")
