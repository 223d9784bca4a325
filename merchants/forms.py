from django import forms

from .models import ApiKey


class ApiKeyCreateForm(forms.Form):
    kind = forms.ChoiceField(choices=[(ApiKey.Kind.SECRET, "Secret"), (ApiKey.Kind.PUBLISHABLE, "Publishable")])
    mode = forms.ChoiceField(choices=[("test", "Test"), ("live", "Live")])
    name = forms.CharField(max_length=100, required=False)


class TotpConfirmForm(forms.Form):
    token = forms.CharField(label="6-digit code", min_length=6, max_length=8)

    def __init__(self, *args, device, **kwargs):
        super().__init__(*args, **kwargs)
        self.device = device

    def clean_token(self):
        token = self.cleaned_data["token"].strip()
        if not self.device.verify_token(token):
            raise forms.ValidationError("That code is not right; check your authenticator app's clock and try again.")
        return token
