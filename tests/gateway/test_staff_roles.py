"""Staff roles (gateway/roles.py, docs/operations.md "Staff roles"): each role opens exactly the admin pages and
runs exactly the actions its row of the table says, over every registered model: changelist and change page (view),
add page, change (POST), delete (POST) and the actions offered. Forbidden is a 403."""
import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from gateway.roles import roles_sync
from tests.otp import login_verified
from tests.staff import staff_user

# What every role reads (v); the letters: v view (changelist and change page), a add, c change, d delete.
READ = {label: "v" for label in [
    "merchants.merchant", "merchants.apikey", "merchants.webhookendpoint", "merchants.idempotencyrecord",
    "wallets.network", "wallets.token", "wallets.masterseed", "wallets.depositaddress", "wallets.chaincursor",
    "wallets.transfer", "wallets.balancediscrepancy", "wallets.sendingaddress", "wallets.outgoingtransaction",
    "payments.paymentintent", "payments.event", "payments.charge", "payments.unmatcheddeposit",
    "payments.webhookdelivery", "settlements.journaltransaction", "settlements.ledgeraccount",
    "settlements.ledgerbalance", "settlements.merchantterms", "settlements.feeschedule", "settlements.ledgeradjustment",
    "settlements.hotcoldsetting", "settlements.coldtransfer", "settlements.hotwalletalert", "settlements.hotwallettopup",
    "settlements.sweeppolicy", "settlements.sweep", "settlements.refund", "settlements.payout",
    "settlements.payoutaddress", "settlements.payoutschedule",
    "wallets.blockedaddress", "wallets.issuerblacklistalert", "payments.helddeposit",
]}

EXPECTED = {
    "support": {
        "pages": READ,
        "actions": {"payments.webhookdelivery": ["resend"]},
    },
    "finance": {
        "pages": {**READ, "audit.auditrecord": "v", "settlements.merchantterms": "vac",
                  "settlements.feeschedule": "vac", "settlements.ledgeradjustment": "va",
                  "settlements.hotcoldsetting": "vac", "settlements.sweeppolicy": "vac"},
        "actions": {"payments.paymentintent": ["cancel_by_staff"],
                    "payments.unmatcheddeposit": ["assign", "refund_deposits"],
                    "settlements.refund": ["approve", "cancel", "reject"], "settlements.payout": ["approve", "reject"],
                    "wallets.network": ["rescan"], "wallets.balancediscrepancy": ["mark_resolved"],
                    "settlements.ledgeradjustment": ["approve", "reject"]},
    },
    "security": {
        "pages": {**READ, "audit.auditrecord": "v", "auth.user": "v", "auth.group": "v",
                  "merchants.merchant": "vc", "merchants.apikey": "vc", "merchants.webhookendpoint": "vc",
                  "merchants.encryptedtotpdevice": "vd", "axes.accessattempt": "vd", "axes.accesslog": "v",
                  "axes.accessfailurelog": "v", "wallets.blockedaddress": "va"},
        "actions": {"merchants.merchant": ["freeze", "unfreeze"],
                    "merchants.webhookendpoint": ["disable_endpoints", "enable_endpoints"],
                    "merchants.encryptedtotpdevice": ["delete_selected"],
                    "axes.accessattempt": ["cleanup_expired_attempts", "delete_selected"],
                    "wallets.blockedaddress": ["deactivate"], "payments.helddeposit": ["keep", "release"],
                    "wallets.issuerblacklistalert": ["acknowledge"]},
    },
    "none": {"pages": {}, "actions": {}},  # staff without a role: nothing
}


def _url(label, name, *args):
    app, model = label.split(".")
    return reverse(f"admin:{app}_{model}_{name}", args=args)


def _observed(client) -> dict:
    """What the admin lets this client do, model by model (every model registered on the admin site)."""
    pages, actions = {}, {}
    for model in admin.site._registry:
        label = model._meta.label_lower
        changelist = client.get(_url(label, "changelist"))
        assert changelist.status_code in (200, 403), (label, changelist.status_code)
        change_page = client.get(_url(label, "change", "0"))  # no such object: allowed -> redirect, else 403
        assert (changelist.status_code == 200) == (change_page.status_code == 302), label
        letters = "v" if changelist.status_code == 200 else ""
        add = client.get(_url(label, "add"))
        letters += "a" if add.status_code == 200 else ""
        letters += "c" if client.post(_url(label, "change", "0"), {}).status_code == 302 else ""
        letters += "d" if client.post(_url(label, "delete", "0"), {"post": "yes"}).status_code == 302 else ""
        if letters:
            pages[label] = letters
        form = changelist.context["action_form"] if changelist.status_code == 200 else None
        offered = [name for name, _ in form.fields["action"].choices if name] if form is not None else []
        if offered:
            actions[label] = sorted(offered)
    return {"pages": pages, "actions": actions}


@pytest.fixture
def staff(db):
    def make(role):
        client = Client()
        login_verified(client, staff_user(role))
        return client

    return make


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_each_role_sees_and_does_exactly_what_the_table_says(staff, role):
    assert _observed(staff(role)) == EXPECTED[role]


def test_a_superuser_opens_every_page_and_every_action(admin_client):
    observed = _observed(admin_client)
    assert set(observed["pages"]) == {m._meta.label_lower for m in admin.site._registry}
    for role in ("support", "finance", "security"):
        for label, names in EXPECTED[role]["actions"].items():
            assert set(names) <= set(observed["actions"][label]), label


def test_the_roles_are_seeded_with_exact_permissions(db):
    roles_sync()
    finance = set(Group.objects.get(name="finance").permissions.values_list("codename", flat=True))
    assert {"approve_payout", "approve_refund", "approve_ledgeradjustment", "resolve_balancediscrepancy"} & finance \
        == {"approve_payout", "approve_refund", "approve_ledgeradjustment"}
    support = set(Group.objects.get(name="support").permissions.values_list("codename", flat=True))
    assert {p for p in support if not p.startswith("view_")} == {"resend_webhookdelivery"}


def test_every_action_of_ours_requires_a_permission():
    """An action without `permissions=[...]` is offered to whoever may view the list: each of ours names one."""
    ours = {"audit", "merchants", "wallets", "payments", "settlements"}
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in ours:
            continue
        for func, name, _ in model_admin._get_base_actions():
            assert getattr(func, "allowed_permissions", None), (model._meta.label_lower, name)


def test_every_inline_row_a_role_reads_is_in_its_permissions():
    """A page's inline rows (a merchant's team, a sweep's items...) are shown only with their own view permission:
    whoever reads the page reads its rows."""
    from gateway.roles import OPERATIONS_VIEW

    for model, model_admin in admin.site._registry.items():
        if f"{model._meta.app_label}.view_{model._meta.model_name}" not in OPERATIONS_VIEW:
            continue
        for inline in model_admin.inlines:
            meta = inline.model._meta
            assert f"{meta.app_label}.view_{meta.model_name}" in OPERATIONS_VIEW, (model._meta.label_lower, meta.label)
