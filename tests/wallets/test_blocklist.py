"""The address blocklist (wallets/blocklist.py, `manage.py blocklist`): CSV and OFAC SDN XML imports (both of OFAC's
formats, EVM addresses only, idempotent, counted, dry run), list and check, adding and deactivating by hand and in
the admin, each audited."""
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from audit.models import AuditRecord
from gateway.errors import DomainError
from tests.otp import login_verified
from tests.staff import staff_user
from wallets.blocklist import blocked_address_add, blocked_address_deactivate, blocklist_import, ofac_entries
from wallets.models import BlockedAddress
from wallets.selectors import address_is_blocked, blocked_among

FIXTURES = Path(__file__).parent / "fixtures"
LAZARUS = "0x098b716b8aaf21512996dc57eb0615e2383e2f96"


def run(*args) -> dict:
    out = []

    class Sink:
        def write(self, text):
            out.append(text)

        def flush(self):
            pass

    call_command("blocklist", *args, stdout=Sink())
    text = "".join(out)
    return json.loads(text) if "--json" in args else text


def test_a_csv_import_adds_its_evm_addresses_once_and_counts_the_rest(db):
    first = run("import", "--csv", str(FIXTURES / "blocklist.csv"), "--json")
    assert first == {"source": "csv", "file_sha256": first["file_sha256"], "read": 2, "added": 2,
                     "already_blocked": 0, "deactivated_kept": 0, "dry_run": False,
                     "skipped": {"no_reason": 1, "not_an_evm_address": 1}}
    row = BlockedAddress.objects.get(address="0x7f367cc41522ce07553e823bf3be79a889debe1b")
    assert (row.source, row.reason, row.active, row.added_by) == (
        "csv", "case 2026-114: chargeback fraud ring", True, "command:blocklist import")
    assert address_is_blocked("0x7F367cC41522cE07553e823bf3be79A889DEbe1B")  # any case

    # again: nothing added, one more audit record with the counts
    again = run("import", "--csv", str(FIXTURES / "blocklist.csv"), "--json")
    assert (again["added"], again["already_blocked"]) == (0, 2)
    assert BlockedAddress.objects.count() == 2
    records = list(AuditRecord.objects.filter(action="blocklist.import").order_by("seq"))
    assert [r.after["added"] for r in records] == [2, 0] and records[0].actor_id == "command:blocklist import"


def test_both_ofac_formats_give_their_evm_addresses_with_the_sdn_reference(db):
    sdn = ofac_entries((FIXTURES / "sdn_sample.xml").read_bytes())
    assert {(e.address, e.list_reference) for e in sdn.entries} == {
        (LAZARUS, "SDN 16193 ETH"), ("0xa0e1c89ef1a489c9c7de96311ed5ce5d32c20e4b", "SDN 16193 ETH"),
        ("0x3cbded43efdaf0fc77b9c55f6fc9988fcc9b37d9", "SDN 40001 USDT"),
        ("0x3cbded43efdaf0fc77b9c55f6fc9988fcc9b37d9", "SDN 40001 BSC")}
    assert dict(sdn.skipped) == {"not_evm:XBT": 1, "not_evm:USDT": 1}  # Bitcoin, and USDT on Tron
    reason = next(e.reason for e in sdn.entries if e.list_reference == "SDN 40001 USDT")
    assert reason == "OFAC SDN: Ivan EXAMPLOV [CYBER2, RUSSIA-EO14024]"

    advanced = ofac_entries((FIXTURES / "sdn_advanced_sample.xml").read_bytes())
    assert {(e.address, e.list_reference) for e in advanced.entries} == {
        (LAZARUS, "SDN 16193 ETH"), ("0x5a14e72060c11313e38738009254a90968f58f51", "SDN 16193 ARB")}
    assert dict(advanced.skipped) == {"not_evm:XBT": 1}
    assert advanced.entries[0].reason == "OFAC SDN: LAZARUS GROUP"


def test_an_ofac_import_is_idempotent_and_a_dry_run_writes_nothing(db):
    sdn, advanced = str(FIXTURES / "sdn_sample.xml"), str(FIXTURES / "sdn_advanced_sample.xml")
    dry = run("import", "--ofac-xml", sdn, "--dry-run", "--json")
    assert (dry["read"], dry["added"], dry["dry_run"]) == (3, 3, True)
    assert not BlockedAddress.objects.exists() and not AuditRecord.objects.filter(action="blocklist.import").exists()

    assert run("import", "--ofac-xml", sdn, "--json")["added"] == 3
    assert run("import", "--ofac-xml", sdn, "--json")["added"] == 0
    # the advanced file of the same list adds only what the first did not have
    both = run("import", "--ofac-xml", advanced, "--json")
    assert (both["read"], both["added"], both["already_blocked"]) == (2, 1, 1)
    assert BlockedAddress.objects.filter(source="ofac").count() == 4
    assert BlockedAddress.objects.get(address=LAZARUS).list_reference == "SDN 16193 ETH"

    # an address staff deactivated stays deactivated when the list is imported again
    blocked_address_deactivate(blocked=BlockedAddress.objects.get(address=LAZARUS), actor="command:test",
                               reason="licensed")
    again = run("import", "--ofac-xml", sdn, "--json")
    assert (again["added"], again["already_blocked"], again["deactivated_kept"]) == (0, 2, 1)
    assert not address_is_blocked(LAZARUS)
    text = run("import", "--ofac-xml", sdn)
    assert "3 EVM addresses read, added 0" in text and "skipped 1: not_evm:XBT" in text


def test_a_file_that_is_not_an_sdn_list_is_refused(db, tmp_path):
    bad = tmp_path / "x.xml"
    bad.write_text("<html><body/></html>")
    with pytest.raises(DomainError, match="Not an OFAC SDN file"):
        blocklist_import(source="ofac", data=bad.read_bytes(), actor="command:test")
    with pytest.raises(DomainError, match="Not an XML file"):
        blocklist_import(source="ofac", data=b"address,reason\n", actor="command:test")
    assert not BlockedAddress.objects.exists()


def test_list_check_add_and_remove(db):
    run("add", LAZARUS.upper().replace("0X", "0x"), "--reason", "case 7")
    assert run("check", LAZARUS, "--json")["blocked"] is True
    assert "BLOCKED" in run("check", LAZARUS) and "not blocked" in run("check", "0x" + "1" * 40)
    assert [r["address"] for r in run("list", "--json")] == [LAZARUS]
    run("remove", LAZARUS, "--reason", "a mistake")
    assert run("list", "--json") == [] and len(run("list", "--all", "--json")) == 1
    assert blocked_among([LAZARUS, "0x" + "1" * 40]) == set()
    actions = list(AuditRecord.objects.order_by("seq").values_list("action", "reason"))
    assert actions == [("blocked_address.add", "case 7"), ("blocked_address.deactivate", "a mistake")]
    # added again later: active again, with the new reason
    row = blocked_address_add(address=LAZARUS, reason="case 8", actor="command:test")
    assert row.active and row.reason == "case 8" and row.deactivated_at is None


def test_security_staff_add_and_deactivate_in_the_admin_with_a_reason(db):
    client = Client()
    login_verified(client, staff_user("security"))
    response = client.post("/admin/wallets/blockedaddress/add/",
                           {"address": " 0x098B716B8Aaf21512996dC57EB0615e2383E2f96 ", "reason": "police request 12",
                            "list_reference": "ticket 12"})
    assert response.status_code == 302, response.content.decode()[:2000]
    row = BlockedAddress.objects.get()
    assert (row.address, row.source, row.reason, row.added_by) == (LAZARUS, "manual", "police request 12",
                                                                   row.added_by)
    assert AuditRecord.objects.filter(action="blocked_address.add", reason="police request 12").count() == 1
    # twice: refused by the form, nothing written
    again = client.post("/admin/wallets/blockedaddress/add/", {"address": LAZARUS, "reason": "again"})
    assert again.status_code == 200 and "blocked already" in again.content.decode()

    response = client.post("/admin/wallets/blockedaddress/", {
        "action": "deactivate", "_selected_action": [row.pk], "apply": "1", "reason": "request withdrawn"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert not row.active and row.deactivation_reason == "request withdrawn"
    assert AuditRecord.objects.filter(action="blocked_address.deactivate", reason="request withdrawn").exists()


def test_support_staff_cannot_add_to_the_blocklist(db):
    client = Client()
    login_verified(client, staff_user("support"))
    assert client.get("/admin/wallets/blockedaddress/").status_code == 200
    assert client.post("/admin/wallets/blockedaddress/add/", {"address": LAZARUS, "reason": "x"}).status_code == 403
    assert not BlockedAddress.objects.exists()
