"""Settings > Payment methods (/portal/settings/payment-methods/): the networks and tokens a new intent offers when
the API names none. It lives here, not in merchants.settings_views with the other sections, because it offers only
the active networks and tokens (wallets.networks), which `merchants` cannot read."""
from django import forms

from merchants import services
from merchants.forms import SettingsForm
from merchants.settings_views import Section
from wallets.networks import active_networks

from .access import portal_page


def offered() -> tuple[list[tuple[str, str]], list[tuple[str, str]], dict[str, set[str]]]:
    """The networks (API name, display name) and tokens (currency, symbol) active in either mode, and each network's
    token currencies."""
    networks: dict[str, str] = {}
    tokens_of: dict[str, set[str]] = {}
    for livemode in (True, False):
        for name, active in active_networks(livemode=livemode).items():
            networks.setdefault(name, active.network.display_name)  # the live name first
            tokens_of.setdefault(name, set()).update(t.currency for t in active.tokens)
    currencies = sorted(set().union(*tokens_of.values())) if tokens_of else []
    return list(networks.items()), [(c, c.upper()) for c in currencies], tokens_of


class PaymentMethodsForm(SettingsForm):
    enabled_networks = forms.MultipleChoiceField(
        label="Networks", widget=forms.CheckboxSelectMultiple, required=True,
        error_messages={"required": "Keep at least one network."},
        help_text="The networks a new payment offers when your API request names none.")
    enabled_tokens = forms.MultipleChoiceField(
        label="Tokens", widget=forms.CheckboxSelectMultiple, required=True,
        error_messages={"required": "Keep at least one token."},
        help_text="The tokens a payment accepts on those networks.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        networks, tokens, self.tokens_of = offered()
        self.fields["enabled_networks"].choices = networks
        self.fields["enabled_tokens"].choices = tokens

    def clean(self):
        data = super().clean()
        networks, tokens = data.get("enabled_networks"), data.get("enabled_tokens")
        if networks and tokens and not any(set(tokens) & self.tokens_of.get(n, set()) for n in networks):
            self.add_error("enabled_tokens", "None of these tokens is offered on the networks chosen.")
        return data


def _initial(merchant) -> dict:
    networks, tokens, _ = offered()
    # Empty means every active one: show them all checked.
    return {"enabled_networks": merchant.enabled_networks or [n for n, _ in networks],
            "enabled_tokens": merchant.enabled_tokens or [t for t, _ in tokens]}


PAYMENT_METHODS = Section(
    tab="portal:settings-payment-methods", title="Payment methods", save_url="portal:settings-payment-methods-save",
    form=PaymentMethodsForm, intro="Only networks and tokens the gateway has active are offered.",
    initial=_initial,
    save=lambda request, data: services.merchant_payment_methods_update(
        merchant=request.portal_merchant, enabled_networks=data["enabled_networks"],
        enabled_tokens=data["enabled_tokens"], request=request),
    saved="Payment methods", guard=portal_page,
)
settings_payment_methods, settings_payment_methods_save = PAYMENT_METHODS.views("settings_payment_methods", __name__)
