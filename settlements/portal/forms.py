"""Forms of the portal's money pages: every refusal names its field, amounts are typed in the currency's major units
and become integers of minor units exactly (Decimal.scaleb, no float)."""
import secrets
from urllib.parse import urlencode

from django import forms

from gateway.api.input import validate_text
from gateway.errors import DomainError
from gateway.ids import id_is_valid
from payments.portal.forms import KeysetCursorForm
from payments.pricing import FIAT_EXPONENTS
from wallets.models import Token

from ..forms import FreshCodeForm
from ..models import Payout, PayoutAddress
from ..refunds import services as refund_services
from ..refunds.models import Refund
from ..selectors import TYPE_KINDS, balance_transaction_journal_id


def _blank(choices):
    return [("", "any")] + list(choices)


def minor_units(value, currency: str) -> int:
    """A Decimal of major units (validated to the currency's decimals) as an integer of minor units."""
    return int(value.scaleb(FIAT_EXPONENTS.get(currency, 2)))


class BalanceTransactionFilterForm(KeysetCursorForm):
    """The balance transactions list's filters; `after` / `before` are `txn_<journal id>` cursors."""

    type = forms.ChoiceField(required=False, choices=_blank((t, t.replace("_", " ")) for t in TYPE_KINDS))
    created_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    created_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    FILTERS = ("type", "created_from", "created_to")

    def _cursor(self, name):
        value = self.cleaned_data[name].strip()
        if value and balance_transaction_journal_id(value) is None:
            raise forms.ValidationError("Not a page of this list: start again from the first page.")
        return value

    def clean(self):
        data = super().clean()
        if data.get("created_from") and data.get("created_to") and data["created_from"] > data["created_to"]:
            self.add_error("created_to", "The end date is before the start date.")
        return data

    def journal_bounds(self, journals) -> dict:
        """{"after"/"before": the journal row} among `journals` (the merchant's, in this mode); a cursor that is not
        one of them is an error of its field."""
        bounds = {}
        for name in ("after", "before"):
            if self.cleaned_data.get(name):
                row = (journals.filter(pk=balance_transaction_journal_id(self.cleaned_data[name]))
                       .select_related(None).only("id", "created").first())
                if row is None:
                    self.add_error(name, "Not a page of this list: start again from the first page.")
                bounds[name] = row
        return bounds

    def filter_query(self) -> str:
        return urlencode({k: self.data[k] for k in self.FILTERS if self.data.get(k)})


class PayoutFilterForm(KeysetCursorForm):
    cursor_prefix = "po"
    status = forms.ChoiceField(required=False, choices=_blank(Payout.Status.choices))

    def filter_query(self) -> str:
        return urlencode({"status": self.data["status"]}) if self.data.get("status") else ""


class RefundFilterForm(KeysetCursorForm):
    cursor_prefix = "re"
    status = forms.ChoiceField(required=False, choices=_blank(Refund.Status.choices))
    payment_intent = forms.CharField(label="Payment", required=False, max_length=40, validators=[validate_text],
                                     help_text="pi_ id")

    def clean_payment_intent(self):
        value = self.cleaned_data["payment_intent"].strip()
        if value and not id_is_valid(value, "pi"):
            raise forms.ValidationError("Give a payment's id (pi_...).")
        return value

    def filter_query(self) -> str:
        return urlencode({k: self.data[k] for k in ("status", "payment_intent") if self.data.get(k)})


def payout_assets(*, merchant, livemode: bool) -> list[PayoutAddress]:
    """The merchant's current payout addresses in this mode whose token is pegged to a currency (what a payout can
    be made in)."""
    return list(PayoutAddress.objects.filter(merchant=merchant, livemode=livemode, removed_at__isnull=True,
                                             token__is_active=True, network__is_active=True)
                .exclude(token__pegged_currency="").select_related("network", "token")
                .order_by("network__api_name", "token__currency"))


class PayoutCreateForm(FreshCodeForm):
    """A payout from the available balance to the payout address of the chosen network and token. Live mode asks for
    a fresh code from the authenticator (as adding a payout address does); test mode moves no real money."""

    token = forms.ChoiceField(label="Token and network")
    amount = forms.DecimalField(label="Amount (USD)", min_value=0, max_digits=18, decimal_places=2)
    description = forms.CharField(required=False, max_length=1000, validators=[validate_text])
    field_order = ["token", "amount", "description", "otp_token"]

    def __init__(self, *args, merchant, livemode: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.addresses = {str(a.token_id): a for a in payout_assets(merchant=merchant, livemode=livemode)}
        self.fields["token"].choices = [
            (key, f"{a.token.currency.upper()} on {a.network.display_name} to {a.address}")
            for key, a in self.addresses.items()]
        if not livemode:
            del self.fields["otp_token"]

    def clean_token(self) -> Token:
        address = self.addresses.get(self.cleaned_data["token"])
        if address is None:
            raise forms.ValidationError("Choose a token with a payout address.")
        return address.token

    def clean(self):
        data = super().clean()
        token, amount = data.get("token"), data.get("amount")
        if token is not None and amount is not None:
            data["currency"] = token.pegged_currency
            data["amount_minor"] = minor_units(amount, token.pegged_currency)
            if data["amount_minor"] <= 0:
                self.add_error("amount", "Give an amount above zero.")
        return data


# A service's refusal (its `param`) -> the form's field it is about.
FIELD_OF_PARAM = {"amount": "amount", "crypto[network]": "token", "crypto[token_currency]": "token",
                  "destination_address": "destination_address", "crypto[destination_address]": "destination_address"}


def refusal_to_form(form: forms.Form, exc: DomainError) -> None:
    field = FIELD_OF_PARAM.get(exc.param or "")
    form.add_error(field if field in form.fields else None, exc.message)


class RefundCreateForm(forms.Form):
    """A refund of a Charge (`amount`: empty for what is left) or of an unmatched deposit (whole: no amount). With
    no destination address the refund waits for the customer's address on the claim page."""

    amount = forms.DecimalField(label="Amount", required=False, min_value=0, max_digits=18, decimal_places=2,
                                help_text="Empty: everything not refunded yet.")
    reason = forms.ChoiceField(required=False, choices=[("", "none given")] + [
        (r, r.replace("_", " ")) for r in Refund.Reason.values])
    destination_address = forms.CharField(
        label="Customer's address", required=False, max_length=100,
        help_text="Empty: we make a claim link where the customer gives it (emailed to the receipt email).")

    # One submission per form shown: a double click or a resubmitted page refunds once (merchants.idempotency).
    form_token = forms.RegexField(regex=r"^[A-Za-z0-9_-]{20,64}$", widget=forms.HiddenInput,
                                  error_messages={"required": "This form has expired: open it again."})

    def __init__(self, *args, currency: str | None, **kwargs):
        """`currency`: the Charge's (amounts in its major units), None for an unmatched deposit (refunded whole)."""
        super().__init__(*args, **kwargs)
        self.currency = currency
        if not self.is_bound:
            self.fields["form_token"].initial = secrets.token_urlsafe(24)
        if currency is None:  # an unmatched deposit is refunded whole: a second submission is refused anyway
            del self.fields["amount"]
            del self.fields["form_token"]
        else:
            self.fields["amount"] = forms.DecimalField(
                label=f"Amount ({currency.upper()})", required=False, min_value=0, max_digits=18,
                decimal_places=FIAT_EXPONENTS.get(currency, 2), help_text="Empty: everything not refunded yet.")
            self.order_fields(["amount", "reason", "destination_address"])

    def clean_destination_address(self):
        value = self.cleaned_data["destination_address"].strip()
        if not value:
            return ""
        try:
            return refund_services.destination_address_check(value, param="destination address")
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean(self):
        data = super().clean()
        if self.currency is not None and data.get("amount") is not None:
            data["amount_minor"] = minor_units(data["amount"], self.currency)
            if data["amount_minor"] <= 0:
                self.add_error("amount", "Give an amount above zero, or leave it empty to refund what is left.")
        else:
            data["amount_minor"] = None
        return data
