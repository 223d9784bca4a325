"""Admin > Operations: the on-call engineer's one page, behind the admin's password and TOTP."""
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from settlements.models import AccountKind, JournalTransaction
from settlements.services import Posting, journal_transaction_post, ledger_account_get
from tests.otp import login_verified
from tests.payments.conftest import settle
from wallets.models import Token

HOT = "0x00000000000000000000000000000000000000a1"


def hot_wallet_funded(network, amount_base_units):
    """A hot wallet holding `amount_base_units` of the network's USDT in the ledger (moved from cold)."""
    token = Token.objects.get(network=network, currency="usdt")
    hot = ledger_account_get(kind=AccountKind.HOT_WALLET, network_id=network.id, token_id=token.id, address=HOT,
                             livemode=network.livemode)
    cold = ledger_account_get(kind=AccountKind.COLD_WALLET, network_id=network.id, token_id=token.id,
                              address="0x00000000000000000000000000000000000000c0", livemode=network.livemode)
    journal_transaction_post(kind=JournalTransaction.Kind.ADJUSTMENT, source_type="test", source_id="hot-1",
                             postings=[Posting(hot, amount_base_units), Posting(cold, -amount_base_units)])


def test_staff_see_chains_rpc_backlog_hot_wallets_and_discrepancies(devnet, anvil_chain, admin_user):
    # Given the devnet scanned, and a hot wallet holding 250.5 USDT (18 decimals on the devnet)
    settle(devnet, anvil_chain)
    hot_wallet_funded(devnet, 250_500_000_000_000_000_000)
    staff = Client()
    login_verified(staff, admin_user)
    # when a verified staff member opens the page
    response = staff.get("/admin/operations/")
    # then it shows the network's head, cursor and lag, its RPC endpoint answering (URL masked), the backlog,
    # the hot wallet's balance and the placeholders
    assert response.status_code == 200
    page = response.content.decode()
    devnet.refresh_from_db()
    head = devnet.cursor.head_number
    assert f"({devnet.code})" in page and str(head) in page
    assert f"<code>http://127.0.0.1:{anvil_chain.port}</code>" in page
    assert "Webhook deliveries due now" in page and "250.5" in page and HOT in page
    assert "Pending approvals" in page and "not set" in page
    # and /metrics exports the same balance
    body = Client().get("/metrics").content.decode()
    balances = {s.labels["address"]: s.value for f in text_string_to_metric_families(body) for s in f.samples
                if s.name == "gateway_hot_wallet_balance"}
    assert balances[HOT] == pytest.approx(250.5)


@pytest.mark.django_db
def test_the_page_needs_a_staff_member_with_a_verified_second_factor():
    # anonymous: to the admin's login
    response = Client().get("/admin/operations/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    # staff logged in by password only (no TOTP verification): still the login
    staff = get_user_model().objects.create_superuser("ops2", "ops2@example.com", "pw 12345678")
    client = Client()
    client.force_login(staff)
    response = client.get("/admin/operations/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
