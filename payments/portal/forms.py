"""The portal's filter and action forms: every refusal names its field (never a 500, never a half-written row)."""
import re
from datetime import timedelta
from urllib.parse import urlencode

from django import forms

from gateway.api.input import validate_text
from gateway.ids import id_is_valid
from gateway.ssrf import MAX_URL_LENGTH, UnsafeUrl, url_validate
from merchants.event_types import ALL_EVENTS, EVENT_TYPES, TEST_EVENT_TYPE
from wallets.networks import API_NETWORK_NAMES

from ..models import PaymentIntent, UnmatchedDeposit
from ..pricing import FIAT_EXPONENTS
from ..services import MERCHANT_CANCELLATION_REASONS
from .selectors import cursor_row

AMOUNT_EXPONENT = FIAT_EXPONENTS["usd"]  # the list's amounts are typed in the currency's major units (12.34)
TOKENS = ("usdc", "usdt")
_TX_HASH = re.compile(r"0x[0-9a-f]{64}")
_ADDRESS = re.compile(r"0x[0-9a-f]{40}")


def _blank(choices):
    return [("", "any")] + list(choices)


class KeysetCursorForm(forms.Form):
    """`after` / `before`: the id of the row a keyset page starts after (or ends before), of `cursor_prefix`'s
    objects (the views then check that it is one of the merchant's)."""

    cursor_prefix = ""
    after = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)
    before = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)

    def _cursor(self, name):
        value = self.cleaned_data[name].strip()
        if value and not id_is_valid(value, self.cursor_prefix):
            raise forms.ValidationError("Not a page of this list: start again from the first page.")
        return value

    def clean_after(self):
        return self._cursor("after")

    def clean_before(self):
        return self._cursor("before")

    def clean(self):
        data = super().clean()
        if data.get("after") and data.get("before"):
            self.add_error("before", "Page either after or before a row, not both.")
        return data

    def bounds(self, model, *, merchant, livemode: bool) -> dict:
        """{"after"/"before": the row} for selectors.keyset_page, from a valid form; a cursor that is not one of
        the merchant's rows in this mode becomes an error of its field (the form is then invalid)."""
        bounds = {}
        for name in ("after", "before"):
            if self.cleaned_data.get(name):
                row = cursor_row(model, merchant=merchant, livemode=livemode, pk=self.cleaned_data[name])
                if row is None:
                    self.add_error(name, "Not a page of this list: start again from the first page.")
                bounds[name] = row
        return bounds


class PaymentFilterForm(KeysetCursorForm):
    """The payments list's filters (GET). `after` / `before` are the keyset cursors (an intent id)."""

    cursor_prefix = "pi"

    q = forms.CharField(label="Search", required=False, max_length=254, validators=[validate_text],
                        help_text="pi_ or ch_ id, transaction hash, deposit address or receipt email")
    status = forms.ChoiceField(required=False, choices=_blank(PaymentIntent.Status.choices))
    network = forms.ChoiceField(required=False, choices=_blank((n, n) for n in API_NETWORK_NAMES),
                                help_text="paid on")
    token = forms.ChoiceField(required=False, choices=_blank((t, t.upper()) for t in TOKENS), help_text="paid in")
    created_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    created_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    amount_min = forms.DecimalField(label="Amount from", required=False, min_value=0, max_digits=18,
                                    decimal_places=AMOUNT_EXPONENT)
    amount_max = forms.DecimalField(label="Amount to", required=False, min_value=0, max_digits=18,
                                    decimal_places=AMOUNT_EXPONENT)
    metadata_key = forms.CharField(label="Metadata key", required=False, max_length=40, validators=[validate_text])
    metadata_value = forms.CharField(label="Metadata value", required=False, max_length=500,
                                     validators=[validate_text])

    FILTERS = ("q", "status", "network", "token", "created_from", "created_to", "amount_min", "amount_max",
               "metadata_key", "metadata_value")

    def clean_q(self):
        value = self.cleaned_data["q"].strip()
        if not value:
            return ""
        lowered = value.lower()
        if id_is_valid(value, "pi"):
            self.cleaned_data["q_kind"] = "pi"
        elif id_is_valid(value, "ch"):
            self.cleaned_data["q_kind"] = "ch"
        elif _TX_HASH.fullmatch(lowered):
            self.cleaned_data["q_kind"], value = "tx", lowered
        elif _ADDRESS.fullmatch(lowered):
            self.cleaned_data["q_kind"], value = "address", lowered
        elif "@" in value:
            self.cleaned_data["q_kind"] = "email"
        else:
            raise forms.ValidationError("Search for a pi_ or ch_ id, a 0x transaction hash (64 hex digits), a 0x "
                                        "deposit address (40 hex digits) or a receipt email.")
        return value

    def clean(self):
        data = super().clean()
        if data.get("created_from") and data.get("created_to") and data["created_from"] > data["created_to"]:
            self.add_error("created_to", "The end date is before the start date.")
        for name in ("amount_min", "amount_max"):
            value = data.get(name)
            data[f"{name}_minor"] = None if value is None else int(value.scaleb(AMOUNT_EXPONENT))
        if (data.get("amount_min_minor") is not None and data.get("amount_max_minor") is not None
                and data["amount_min_minor"] > data["amount_max_minor"]):
            self.add_error("amount_max", "The upper amount is below the lower one.")
        if data.get("metadata_value") and not data.get("metadata_key"):
            self.add_error("metadata_key", "Give the metadata key whose value to match.")
        return data

    def filter_query(self) -> str:
        """The filters as a query string (no cursor), for the page links and the CSV export."""
        return urlencode({k: self.data[k] for k in self.FILTERS if self.data.get(k)})


class PaymentCancelForm(forms.Form):
    cancellation_reason = forms.ChoiceField(
        label="Reason", required=False,
        choices=[("", "none given")] + [(r, r.replace("_", " ")) for r in MERCHANT_CANCELLATION_REASONS],
    )


EVENT_CHOICES = [(ALL_EVENTS, "All events (*)")] + [(t, t) for t in EVENT_TYPES]


class WebhookEndpointForm(forms.Form):
    """Create or edit an endpoint: its URL is checked as the API checks it (gateway.ssrf), for the session's mode."""

    url = forms.CharField(label="Endpoint URL", max_length=MAX_URL_LENGTH, widget=forms.URLInput)
    description = forms.CharField(required=False, max_length=5000, validators=[validate_text],
                                  widget=forms.Textarea(attrs={"rows": 2}))
    enabled_events = forms.MultipleChoiceField(label="Events to send", choices=EVENT_CHOICES,
                                               widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, livemode: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.livemode = livemode

    def clean_url(self):
        try:
            return url_validate(self.cleaned_data["url"].strip(), livemode=self.livemode)
        except UnsafeUrl as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_enabled_events(self):
        events = self.cleaned_data["enabled_events"]
        return [ALL_EVENTS] if ALL_EVENTS in events else list(events)


class WebhookSecretRollForm(forms.Form):
    GRACE_HOURS = [(0, "old secret stops now"), (1, "old secret signs for 1 more hour"),
                   (24, "old secret signs for 24 more hours"), (72, "old secret signs for 3 more days"),
                   (168, "old secret signs for 7 more days")]
    grace_hours = forms.TypedChoiceField(label="Old secret", choices=GRACE_HOURS, coerce=int, initial=24)

    def grace(self) -> timedelta:
        return timedelta(hours=self.cleaned_data["grace_hours"])


class EventFilterForm(KeysetCursorForm):
    cursor_prefix = "evt"
    type = forms.ChoiceField(required=False, choices=_blank((t, t) for t in EVENT_TYPES + (TEST_EVENT_TYPE,)))


class UnmatchedFilterForm(KeysetCursorForm):
    """The unmatched deposits list's filter (GET); `after` / `before` are deposit ids (cdep_...)."""

    cursor_prefix = "cdep"
    reason = forms.ChoiceField(required=False, choices=_blank(UnmatchedDeposit.Reason.choices))

    def filter_query(self) -> str:
        return urlencode({"reason": self.data["reason"]}) if self.data.get("reason") else ""
