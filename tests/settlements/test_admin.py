"""Admin: the ledger is shown, never written by hand; terms and fee schedules are edited within their bounds."""
import pytest

from settlements.models import FeeSchedule, JournalTransaction, LedgerAccount, MerchantTerms
from settlements.services import ledger_post_charge_facts

from .conftest import ONE_USDT, paid_charge, token

pytestmark = pytest.mark.usefixtures("ledger_ready")


@pytest.fixture
def browser(admin_client):
    """A staff session verified by a TOTP code, as the admin requires (tests/conftest.py)."""
    return admin_client


def test_ledger_pages_are_read_only(browser, merchant):
    charge = paid_charge(merchant, ONE_USDT)
    ledger_post_charge_facts()
    journal = JournalTransaction.objects.get(source_id=charge.id, kind="charge_credit")
    account = LedgerAccount.objects.get(kind="merchant_available")

    accounts = browser.get("/admin/settlements/ledgeraccount/")
    assert accounts.status_code == 200 and str(-ONE_USDT).encode() in accounts.content
    shown = browser.get(f"/admin/settlements/journaltransaction/{journal.pk}/change/")
    assert shown.status_code == 200 and str(ONE_USDT).encode() in shown.content
    assert browser.get("/admin/settlements/ledgerbalance/").status_code == 200
    assert browser.get("/admin/settlements/journaltransaction/add/").status_code == 403
    deleted = browser.post(f"/admin/settlements/journaltransaction/{journal.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 403
    assert browser.post(f"/admin/settlements/ledgeraccount/{account.pk}/change/", {"kind": "fee_revenue"}).status_code \
        == 403
    assert JournalTransaction.objects.filter(pk=journal.pk).exists()
    assert LedgerAccount.objects.get(pk=account.pk).kind == "merchant_available"


@pytest.mark.parametrize("field, value", [("fee_bps", 10_001), ("fee_fixed_base_units", -1)])
def test_a_fee_schedule_out_of_bounds_is_refused_naming_the_field(browser, merchant, field, value):
    data = {"merchant": merchant.pk, "token": token().pk, "fee_bps": 100, "fee_fixed_base_units": 0, field: value}
    response = browser.post("/admin/settlements/feeschedule/add/", data)
    assert response.status_code == 200  # the form again, with the error
    assert response.context["adminform"].form.errors.keys() == {field}
    assert not FeeSchedule.objects.exists()


def test_a_holding_period_beyond_90_days_is_refused(browser, merchant):
    response = browser.post("/admin/settlements/merchantterms/add/", {"merchant": merchant.pk,
                                                                       "hold_seconds": 90 * 86400 + 1})
    assert response.status_code == 200 and "hold_seconds" in response.context["adminform"].form.errors
    assert not MerchantTerms.objects.exists()
    assert browser.post("/admin/settlements/merchantterms/add/", {"merchant": merchant.pk,
                                                                  "hold_seconds": 3600}).status_code == 302
    assert MerchantTerms.objects.get(merchant=merchant).hold_seconds == 3600
