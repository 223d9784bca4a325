"""The audit trail: hash-chained, append-only in the database, and `audit verify` names the first bad record
whichever way a row was tampered with (changed, deleted, inserted in the middle, cut off at the end)."""
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from audit.actors import command_actor
from audit.models import GENESIS_HASH, AuditHead, AuditRecord
from audit.services import AuditError, ObjectRef, audit_record, record_hash
from audit.verify import audit_chain_verify
from merchants import services as merchant_services


def _append(n: int) -> list[AuditRecord]:
    return [audit_record(actor="command:test", action="thing.touch", obj=ObjectRef("test.thing", str(i)),
                         before={"n": i}, after={"n": i + 1}, reason=f"step {i}") for i in range(n)]


def _sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.fixture
def unguarded(db):
    """The append-only trigger off for this test's transaction (rolled back with it): what an attacker with the
    database owner's rights could do."""
    _sql("ALTER TABLE audit_auditrecord DISABLE TRIGGER audit_record_append_only")
    yield
    _sql("ALTER TABLE audit_auditrecord ENABLE TRIGGER audit_record_append_only")


def test_records_chain_from_the_genesis_hash_and_verify(db):
    records = _append(3)

    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]
    stored = AuditRecord.objects.get(seq=2)
    assert record_hash(stored) == stored.hash  # what PostgreSQL gives back hashes as what was written
    head = AuditHead.objects.get()
    assert (head.seq, head.hash) == (3, records[-1].hash)
    report = audit_chain_verify()
    assert report.ok and report.records == 3


def test_the_database_refuses_update_and_delete(db):
    _append(2)
    for statement in ("UPDATE audit_auditrecord SET reason = 'x' WHERE seq = 1",
                      "DELETE FROM audit_auditrecord WHERE seq = 2",
                      "DELETE FROM audit_audithead"):
        with pytest.raises(Exception, match="append-only"), transaction.atomic():
            _sql(statement)
    assert list(AuditRecord.objects.order_by("seq").values_list("reason", flat=True)) == ["step 0", "step 1"]
    assert audit_chain_verify().ok


@pytest.mark.parametrize("column, value", [("reason", "nothing to see"), ("actor_id", "command:other"),
                                           ("after", '{"n": 99}'), ("object_id", "7")])
def test_a_changed_field_is_named(unguarded, column, value):
    _append(5)
    _sql(f"UPDATE audit_auditrecord SET {column} = %s WHERE seq = 3", [value])

    report = audit_chain_verify()
    assert report.bad_seq == 3 and "field was changed" in report.problem


def test_a_changed_field_with_its_hash_recomputed_breaks_the_next_link(unguarded):
    _append(5)
    forged = AuditRecord.objects.get(seq=3)
    forged.reason = "rewritten"
    _sql("UPDATE audit_auditrecord SET reason = %s, hash = %s WHERE seq = 3", [forged.reason, record_hash(forged)])

    report = audit_chain_verify()
    assert report.bad_seq == 4 and "does not follow" in report.problem


def test_a_deleted_row_is_a_gap(unguarded):
    _append(5)
    _sql("DELETE FROM audit_auditrecord WHERE seq = 2")

    report = audit_chain_verify()
    assert report.bad_seq == 2 and "missing" in report.problem


def test_rows_cut_off_the_end_disagree_with_the_head(unguarded):
    _append(5)
    _sql("DELETE FROM audit_auditrecord WHERE seq >= 4")

    report = audit_chain_verify()
    assert report.bad_seq == 4 and "head" in report.problem


def test_a_row_inserted_in_the_middle_breaks_the_chain(unguarded):
    _append(5)
    # Make room after #2 and slip a well-formed record in, chained to #2: the records after it no longer match.
    _sql("UPDATE audit_auditrecord SET seq = seq + 1000 WHERE seq > 2")
    _sql("UPDATE audit_auditrecord SET seq = seq - 999 WHERE seq > 1000")
    second = AuditRecord.objects.get(seq=2)
    forged = AuditRecord(seq=3, created=second.created, actor_type="staff", actor_id="1", actor_label="mallory",
                         action="thing.touch", object_type="test.thing", object_id="x", before=None, after=None,
                         reason="", ip="", request_id="", prev_hash=second.hash)
    forged.hash = record_hash(forged)
    forged.save(force_insert=True)

    report = audit_chain_verify()
    assert not report.ok and report.bad_seq == 4


def test_audit_verify_command_names_the_first_bad_record(unguarded, capsys):
    _append(3)
    call_command("audit", "verify")
    assert "audit chain OK: 3 records" in capsys.readouterr().out

    _sql("UPDATE audit_auditrecord SET reason = 'changed' WHERE seq = 2")
    with pytest.raises(CommandError, match="record #2"):
        call_command("audit", "verify", "--json")
    assert json.loads(capsys.readouterr().out)["bad_seq"] == 2


@pytest.mark.django_db(transaction=True)
def test_a_record_outside_a_transaction_is_refused():
    with pytest.raises(AuditError):
        audit_record(actor="command:test", action="thing.touch")
    assert not AuditRecord.objects.exists()


def test_secrets_are_never_stored(db):
    record = audit_record(actor=command_actor("test"), action="thing.touch", before={
        "secret": "whsec_abc", "previous_secret": "whsec_old", "key_hash": "f00", "password": "pbkdf2$x",
        "nested": {"wrapped_dek": "AAA", "client_secret": "pi_1_secret_x"}, "key": "seed", "url": "https://x",
        "token_id": 4,
    })

    stored = AuditRecord.objects.get(seq=record.seq).before
    assert stored == {"secret": "[redacted]", "previous_secret": "[redacted]", "key_hash": "[redacted]",
                      "password": "[redacted]", "nested": {"wrapped_dek": "[redacted]", "client_secret": "[redacted]"},
                      "key": "[redacted]", "url": "https://x", "token_id": 4}
    assert "whsec" not in json.dumps(stored)


def test_actors_staff_merchant_user_api_key_and_command(db, merchant):
    User = get_user_model()
    staff = User.objects.create_user(username="ops", is_staff=True)
    shopper = User.objects.create_user(username="shop@example.com")
    key = merchant_services.api_key_create(merchant=merchant).api_key

    records = [audit_record(actor=who, action="thing.touch") for who in (staff, shopper, key, command_actor("x"))]

    assert [(r.actor_type, r.actor_id) for r in records[:3]] == [
        ("staff", str(staff.pk)), ("merchant_user", str(shopper.pk)), ("api_key", key.id)]
    assert records[3].actor_type == "system" and records[3].actor_id == "command:x"
    assert key.redacted in records[2].actor_label


def test_verifying_the_last_records_checks_only_those_and_their_link_to_the_one_before(unguarded):
    _append(6)
    report = audit_chain_verify(last=3)
    assert report.ok and report.records == 3
    _sql("UPDATE audit_auditrecord SET reason = 'x' WHERE seq = 5")
    assert audit_chain_verify(last=3).bad_seq == 5
    assert audit_chain_verify(last=1).ok  # record #5 is outside the last one
    _sql("DELETE FROM audit_auditrecord WHERE seq = 3")
    assert audit_chain_verify(last=3).bad_seq == 3  # the record before the window is gone


def test_a_batch_appends_its_records_at_its_end_and_drops_those_of_a_savepoint_rolled_back(db):
    from audit.services import audit_batch

    # Given a batch of three items, each in its own savepoint, the second of which fails after its record
    with transaction.atomic(), audit_batch():
        for i in range(3):
            try:
                with transaction.atomic():
                    audit_record(actor=command_actor("batch test"), action="thing.touch",
                                 obj=ObjectRef("test.thing", i), reason=f"item {i}")
                    assert not AuditRecord.objects.exists()  # waiting: nothing appended inside the loop
                    if i == 1:
                        raise ValueError("this item fails")
            except ValueError:
                pass

    # then the records of the items that committed are appended, in order, and the failed item's is not
    assert list(AuditRecord.objects.order_by("seq").values_list("reason", flat=True)) == ["item 0", "item 2"]
    assert audit_chain_verify().ok
