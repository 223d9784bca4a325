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


def test_a_sweep_policy_set_by_the_command_is_recorded_and_bad_bounds_write_nothing():
    from django.core.management import CommandError, call_command

    from settlements.models import SweepPolicy
    from tests.settlements.conftest import token

    # Given the bsc network and its USDT
    usdt = token("usdt")
    # when the command sets a policy, then changes it
    call_command("sweep", "--network", usdt.network.code, "--policy", "usdt", "--window", "10")
    call_command("sweep", "--network", usdt.network.code, "--policy", "usdt", "--window", "30", "--max-batch", "50")
    # then one row holds the last values, and each change has its record (the second with what it replaced)
    policy = SweepPolicy.objects.get(token=usdt)
    assert (policy.batch_window_seconds, policy.max_batch_size) == (30, 50)
    first, second = AuditRecord.objects.filter(action="sweep_policy.set").order_by("seq")
    assert first.before is None and second.before["batch_window_seconds"] == 10
    assert second.actor_id == "command:sweep --policy"
    # and a batch size out of bounds is refused naming the field, with nothing written
    with pytest.raises(CommandError, match="max_batch_size"):
        call_command("sweep", "--network", usdt.network.code, "--policy", "usdt", "--max-batch", "0")
    assert SweepPolicy.objects.get(token=usdt).max_batch_size == 50
    assert AuditRecord.objects.filter(action="sweep_policy.set").count() == 2
    assert audit_chain_verify().ok
    with pytest.raises(CommandError, match="without --dry-run"):
        call_command("sweep", "--network", usdt.network.code, "--policy", "usdt", "--dry-run")
