"""The operator's side: the hot/cold setting validated at the edge (admin and `manage.py hot_cold set`, each refusal
naming its field, nothing saved), `manage.py ledger topup` checked against the chain, `manage.py hot_cold` status."""
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from eth_utils import to_checksum_address

from audit.models import AuditRecord
from audit.verify import audit_chain_verify
from settlements.hotcold.forms import HotColdSettingForm
from settlements.hotcold.models import HotColdSetting, HotWalletTopup
from settlements.hotcold.reconcile import wallets_reconcile
from settlements.models import JournalTransaction
from tests.wallets.outgoing.conftest import ETH

from .conftest import ONE, fund_native, mine, mint

COLD = "0x" + "c0" * 19 + "1d"


def form(usdt, **changes) -> HotColdSettingForm:
    data = {"token": usdt.id, "hot_floor_base_units": 10, "hot_ceiling_base_units": 100,
            "native_floor_base_units": 5, "cold_address": COLD, "transfer_gas_limit": 100_000, "is_active": True}
    return HotColdSettingForm(data={**data, **changes})


@pytest.mark.parametrize("changes, field", [
    ({"cold_address": "0x1234"}, "cold_address"),
    ({"cold_address": "not an address at all, no"}, "cold_address"),
    ({"cold_address": "0x" + "0" * 40}, "cold_address"),
    ({"hot_ceiling_base_units": 10}, "hot_ceiling_base_units"),
    ({"hot_floor_base_units": -1}, "hot_floor_base_units"),
    ({"native_floor_base_units": -5}, "native_floor_base_units"),
    ({"transfer_gas_limit": 20_000}, "transfer_gas_limit"),
    ({"hot_ceiling_base_units": "1.5"}, "hot_ceiling_base_units"),
])
def test_a_bad_setting_is_refused_naming_its_field(network, usdt, changes, field):
    bound = form(usdt, **changes)
    assert not bound.is_valid() and field in bound.errors, bound.errors
    assert not HotColdSetting.objects.exists()


def test_a_wrong_checksum_and_our_own_addresses_are_refused(network, client, usdt, hot):
    checksummed = to_checksum_address(COLD)
    wrong = checksummed[:-1] + (checksummed[-1].swapcase() if checksummed[-1].isalpha() else "A")
    assert form(usdt, cold_address=checksummed).is_valid()
    assert "checksum" in str(form(usdt, cold_address=wrong).errors["cold_address"])
    assert "hot wallet" in str(form(usdt, cold_address=hot.address).errors["cold_address"])
    saved = form(usdt, cold_address=checksummed).save()
    assert saved.cold_address == COLD  # stored lower case


def test_the_admin_edits_a_setting_and_refuses_a_bad_one(admin_client, network, usdt):
    url = "/admin/settlements/hotcoldsetting/add/"
    data = {"token": usdt.id, "hot_floor_base_units": "10", "hot_ceiling_base_units": "5",
            "native_floor_base_units": "0", "cold_address": COLD, "transfer_gas_limit": "100000", "is_active": "on"}
    refused = admin_client.post(url, data)
    assert refused.status_code == 200 and "The ceiling must be above the floor." in refused.content.decode()
    assert not HotColdSetting.objects.exists()
    assert admin_client.post(url, {**data, "hot_ceiling_base_units": "500"}).status_code == 302
    assert HotColdSetting.objects.get().hot_ceiling_base_units == 500
    for page in ("hotcoldsetting", "coldtransfer", "hotwalletalert", "hotwallettopup"):
        assert admin_client.get(f"/admin/settlements/{page}/").status_code == 200


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_ledger_topup_is_checked_on_the_chain_and_recorded_once(chain, network, client, hot, usdt):
    tx_hash = mint(chain, token=usdt.contract_address, to=hot.address, amount=5 * ONE)
    base = ["ledger", "topup", "--network", network.code, "--token", "usdt", "--tx-hash", tx_hash, "--reason", "ops"]
    for args, message in ((["--amount", str(4 * ONE)], "--amount"), (["--amount", "0"], "--amount"),
                          (["--amount", "1", "--token", "dai"], "--token")):
        with pytest.raises(CommandError, match=message):
            run(*base, *args)
    with pytest.raises(CommandError, match="--tx-hash"):
        run(*base[:6], "--tx-hash", "0x1234", "--reason", "ops", "--amount", "1")
    with pytest.raises(CommandError, match="not mined"):
        run(*base[:6], "--tx-hash", "0x" + "ab" * 32, "--reason", "ops", "--amount", "1")
    assert HotWalletTopup.objects.filter(token=usdt).count() == 0

    first = json.loads(run(*base, "--amount", str(5 * ONE), "--json"))
    again = json.loads(run(*base, "--amount", str(5 * ONE), "--json"))
    assert first == again and first["amount"] == str(5 * ONE)
    assert JournalTransaction.objects.filter(kind="hot_topup", token=usdt).count() == 1
    # recorded once in the audit trail, as the command, with its reason
    record, = AuditRecord.objects.filter(action="hot_wallet_topup.record", object_id=str(first["topup"]))
    assert (record.actor_id, record.reason) == ("command:ledger topup", "ops")
    assert audit_chain_verify().ok

    # Native coin: the transaction's own value; a recorded top-up not final yet keeps the hot wallet out of the check
    native_hash = fund_native(chain, hot.address, ETH)
    run("ledger", "topup", "--network", network.code, "--token", "native", "--tx-hash", native_hash,
        "--reason", "gas", "--amount", str(ETH))
    summary = wallets_reconcile(network=network, client=client)
    assert summary.differences == 0 and summary.skipped and "top-up" in summary.skipped[0]
    mine(chain, 3)
    summary = wallets_reconcile(network=network, client=client)
    assert (summary.differences, summary.skipped) == (0, [])


def test_hot_cold_set_and_status(network, client, hot, usdt):
    with pytest.raises(CommandError, match="cold_address"):
        run("hot_cold", "set", "--network", network.code, "--token", "usdt", "--floor", "1", "--ceiling", "9",
            "--cold-address", "0xnope")
    assert not HotColdSetting.objects.exists()
    run("hot_cold", "set", "--network", network.code, "--token", "usdt", "--floor", "1", "--ceiling", "9",
        "--cold-address", COLD, "--native-floor", str(ETH))
    run("hot_cold", "set", "--network", network.code, "--token", "usdt", "--ceiling", "20")  # the rest unchanged
    row = HotColdSetting.objects.get()
    assert (row.hot_floor_base_units, row.hot_ceiling_base_units, row.native_floor_base_units, row.cold_address) == (
        1, 20, ETH, COLD)
    created, changed = AuditRecord.objects.filter(action="hot_cold_setting.set").order_by("seq")
    assert {created.actor_id, changed.actor_id} == {"command:hot_cold set"} and created.before is None
    assert (str(changed.before["hot_ceiling_base_units"]), str(changed.after["hot_ceiling_base_units"])) == ("9", "20")
    assert audit_chain_verify().ok
    [token_position, native_position] = json.loads(run("hot_cold", "--json"))
    assert token_position["asset"] == "usdt" and token_position["hot_balance"] == "0"
    assert native_position["asset"] == "native" and native_position["hot_balance"] == str(10 * ETH)
    assert "BELOW FLOOR" in run("hot_cold", "status", "--network", network.code)
