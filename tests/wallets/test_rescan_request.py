"""Re-scan a block range from the admin (wallets.chain.services.chain_rescan_request): the cursor goes back, never
forward, with a reason in the audit trail."""
import pytest
from django.test import Client

from audit.models import AuditRecord
from gateway.errors import DomainError
from tests.otp import login_verified
from tests.staff import staff_user
from wallets.chain.services import chain_cursor_init, chain_rescan_request
from wallets.models import ChainCursor, Network


@pytest.fixture
def network(networks):
    network = Network.objects.get(api_name="bsc", livemode=False, is_active=True)
    chain_cursor_init(network=network, block_number=500)
    return network


@pytest.fixture
def finance(db):
    return staff_user("finance")


def test_a_rescan_rewinds_the_cursor_with_its_reason(network, finance):
    chain_rescan_request(network=network, from_block=420, actor=finance, reason="node missed logs")

    assert ChainCursor.objects.get(network=network).block_number == 419
    record = AuditRecord.objects.get(action="network.rescan")
    assert record.before == {"cursor": 500} and record.after == {"cursor": 419, "from_block": 420}
    assert record.reason == "node missed logs" and record.actor_id == str(finance.pk)

    chain_rescan_request(network=network, from_block=450, actor=finance, reason="again, later block")
    assert ChainCursor.objects.get(network=network).block_number == 419  # never forward


def test_a_rescan_without_a_reason_is_refused(network, finance):
    with pytest.raises(DomainError) as refused:
        chain_rescan_request(network=network, from_block=420, actor=finance, reason="")
    assert refused.value.param == "reason"
    assert ChainCursor.objects.get(network=network).block_number == 500
    assert not AuditRecord.objects.filter(action="network.rescan").exists()


def test_the_admin_action_asks_for_the_block_and_the_reason(network, finance):
    client = Client()
    login_verified(client, finance)
    form = {"action": "rescan", "_selected_action": [network.pk]}

    assert client.post("/admin/wallets/network/", form).status_code == 200
    assert ChainCursor.objects.get(network=network).block_number == 500
    done = client.post("/admin/wallets/network/", {**form, "apply": "1", "from_block": "100", "reason": "backfill"})
    assert done.status_code == 302
    assert ChainCursor.objects.get(network=network).block_number == 99
