"""The hot/cold setting's form (admin and `manage.py hot_cold set`): every refusal names its field."""
from django import forms

from wallets.models import DepositAddress
from wallets.outgoing.models import SendingAddress

from .models import HotColdSetting
from .validators import cold_address_validate


class HotColdSettingForm(forms.ModelForm):
    class Meta:
        model = HotColdSetting
        fields = ("token", "hot_floor_base_units", "hot_ceiling_base_units", "native_floor_base_units",
                  "cold_address", "transfer_gas_limit", "is_active")

    def clean_cold_address(self) -> str:
        raw = self.cleaned_data["cold_address"].strip()
        cold_address_validate(raw)  # the checksum is checked on what was typed, before it is lower-cased
        address = raw.lower()
        if SendingAddress.objects.filter(address=address).exists():
            raise forms.ValidationError("This is one of the gateway's own sending addresses (a hot wallet), not a "
                                        "cold address.", code="hot_wallet")
        if DepositAddress.objects.filter(address=address).exists():
            raise forms.ValidationError("This is one of the gateway's deposit addresses, whose key is here: a cold "
                                        "address must be held elsewhere.", code="deposit_address")
        return address

    def clean(self):
        cleaned = super().clean()
        floor, ceiling = cleaned.get("hot_floor_base_units"), cleaned.get("hot_ceiling_base_units")
        if floor is not None and ceiling is not None and ceiling <= floor:
            self.add_error("hot_ceiling_base_units", "The ceiling must be above the floor.")
        return cleaned
