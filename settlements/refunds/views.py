"""The hosted refund claim page (`/claim/<claim token>`): where a customer gives the address their refund goes to,
typed twice. The token in the URL is the only credential (43 random characters, one refund), so the page shows
that refund and nothing else. Same look and headers as the checkout (payments.views: CSP with a nonce, no-store,
no Referer, noindex)."""
from django import forms
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from gateway.errors import DomainError
from gateway.ratelimit import limit_per_ip
from payments.views import _page, format_base_units, format_fiat

from .models import Refund
from .selectors import refund_by_claim_token
from .services import destination_address_check, refund_claim

Status = Refund.Status
STATUS_LABELS = {  # in the customer's language (gateway.locale)
    Status.REQUIRES_ACTION: gettext_lazy("Waiting for your address"),
    Status.PENDING: gettext_lazy("On its way"),
    Status.SUCCEEDED: gettext_lazy("Sent"),
    Status.FAILED: gettext_lazy("Failed: the shop has been told"),
    Status.CANCELED: gettext_lazy("Canceled by the shop"),
}


class ClaimForm(forms.Form):
    address = forms.CharField(max_length=100, label=gettext_lazy("Your address"))
    address_confirm = forms.CharField(max_length=100, label=gettext_lazy("The same address again"))
    confirm = forms.BooleanField(label=gettext_lazy("I checked that this address is mine and on the right network"))

    def clean_address(self):
        try:
            return destination_address_check(self.cleaned_data["address"], param="address")
        except DomainError as exc:
            raise forms.ValidationError(exc.message.replace("Invalid address: ", "").capitalize()
                                        if exc.message.startswith("Invalid address: ") else exc.message)

    def clean(self):
        data = super().clean()
        address, again = data.get("address"), (data.get("address_confirm") or "").strip().lower()
        if address and again and address != again:
            self.add_error("address_confirm", _("The two addresses differ: type the same address twice."))
        return data


def _amount(refund: Refund) -> dict:
    decimals = refund.token.decimals if refund.token_id else refund.network.native_decimals
    symbol = (refund.token.currency if refund.token_id else refund.network.native_currency).upper()
    return {"token_amount": f"{format_base_units(int(refund.amount_base_units), decimals)} {symbol}",
            "fiat_amount": format_fiat(refund.amount, refund.currency) if refund.amount else "",
            "network": refund.network.display_name}


@require_http_methods(["GET", "HEAD", "POST"])
@limit_per_ip("GATEWAY_RATE_LIMIT_CHECKOUT_PER_IP", "checkout", json=False)
def claim_page(request: HttpRequest, claim_token: str) -> HttpResponse:
    refund = refund_by_claim_token(claim_token)
    if refund is None:
        return _page(request, "checkout/refund_not_found.html", {}, status=404)
    form = None
    if refund.status == Status.REQUIRES_ACTION:
        form = ClaimForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                refund_claim(refund=refund, destination_address=form.cleaned_data["address"], request=request)
            except DomainError:  # claimed meanwhile (another tab): show what it is now
                pass
            return HttpResponseRedirect(reverse("refund_claim:page", args=[claim_token]))
    status = 400 if form is not None and form.is_bound and form.errors else 200
    return _page(request, "checkout/refund_claim.html", {
        "merchant_name": refund.merchant.name,
        "merchant_initial": (refund.merchant.name.strip()[:1] or "?").upper(),
        "livemode": refund.livemode,
        "status": refund.status,
        "status_label": STATUS_LABELS.get(refund.status, refund.status),
        "address": refund.destination_address,
        "form": form,
        **_amount(refund),
    }, status=status)
