"""The portal's payout-address forms: the address checked as the payouts will need it, and a fresh TOTP code."""
from django import forms

from gateway import otp
from gateway.otp import OneTimeCodeInput
from wallets.models import Token

from .models import PayoutSchedule
from .payouts import payout_address_problem


class FreshCodeForm(forms.Form):
    otp_token = forms.CharField(label="Code from your authenticator app", max_length=8, widget=OneTimeCodeInput(
        attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_otp_token(self):
        token = self.cleaned_data["otp_token"]
        if not otp.totp_code_verify(user=self.user, token=token):
            raise forms.ValidationError("That code is not right (each code works once); try the next one.")
        return token


class ApprovalDecisionForm(FreshCodeForm):
    """An approval or a rejection of held payouts or refunds (the admin): a fresh TOTP code of the deciding staff
    member, and a note (a rejection must say why)."""

    note = forms.CharField(label="Note", max_length=2000, required=False,
                           widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
                           help_text="Kept on each object and in the audit trail.")
    field_order = ["note", "otp_token"]


class RejectionForm(ApprovalDecisionForm):
    note = forms.CharField(label="Reason", max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
                           help_text="Why they are rejected: kept on each object and in the audit trail.")


def _token_choices():
    tokens = Token.objects.filter(is_active=True, network__is_active=True).select_related("network").order_by(
        "network__livemode", "network__api_name", "currency")
    return [(str(t.id), f"{t.currency.upper()} on {t.network.api_name} ({'live' if t.network.livemode else 'test'})")
            for t in tokens]


class PayoutAddressAddForm(FreshCodeForm):
    token = forms.ChoiceField(label="Token and network")
    address = forms.CharField(label="Address", max_length=42)
    field_order = ["token", "address", "otp_token"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["token"].choices = _token_choices()

    def clean_token(self):
        token = Token.objects.filter(pk=self.cleaned_data["token"], is_active=True).select_related("network").first()
        if token is None:
            raise forms.ValidationError("Choose a token.")
        return token

    def clean_address(self):
        address = self.cleaned_data["address"].strip()
        problem = payout_address_problem(address=address)
        if problem:
            raise forms.ValidationError(f"The address {problem}")
        return address.lower()


class PayoutScheduleForm(forms.ModelForm):
    class Meta:
        model = PayoutSchedule
        fields = ["interval", "weekly_anchor", "minimum_amount"]
        labels = {"interval": "Automatic payouts", "weekly_anchor": "Weekday (weekly: 0 Monday ... 6 Sunday, UTC)",
                  "minimum_amount": "Minimum amount (cents)"}
