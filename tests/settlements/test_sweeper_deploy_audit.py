"""`sweep --deploy` queues the network's Sweeper and records it, as the command, in the same transaction."""
import pytest

from audit.actors import command_actor
from audit.models import AuditRecord
from audit.verify import audit_chain_verify
from settlements import sweeps
from tests.settlements.conftest import bsc
from wallets.outgoing.models import SendingAddress

pytestmark = pytest.mark.usefixtures("ledger_ready")


def test_the_sweeper_deployment_is_recorded_once():
    network = bsc()
    SendingAddress.objects.create(network=network, address="0x" + "ab" * 20, key_ref="x", next_nonce=0,
                                  purpose=SendingAddress.Purpose.HOT)

    address = sweeps.sweeper_deploy(network=network, actor=command_actor("sweep --deploy"))
    assert sweeps.sweeper_deploy(network=network, actor=command_actor("sweep --deploy")) == address  # kept

    record, = AuditRecord.objects.filter(action="network.sweeper_deploy")
    assert (record.actor_id, record.object_id) == ("command:sweep --deploy", str(network.pk))
    assert record.before == {"sweeper_address": ""} and record.after["sweeper_address"] == address
    assert audit_chain_verify().ok
