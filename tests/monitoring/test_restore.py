"""The backup and restore procedure of docs/operations.md ("Backup and restore"), for a small site: `pg_dump` of the
gateway's database after a paid intent (with its ledger postings and audit records), `pg_restore` into a fresh
database, then `manage.py audit verify` and `manage.py ledger check` run against the restored copy and every table
holds as many rows as the original. The client binaries are this machine's PostgreSQL 15 ones (`pg_dump
--version` must match the server's major version: an older pg_dump refuses a newer server)."""
import os
import shutil
import subprocess

import psycopg
import pytest
from django.db import connection, transaction

from audit.actors import command_actor
from audit.services import ObjectRef, audit_record
from payments.models import PaymentIntent
from settlements.models import JournalTransaction
from settlements.services import ledger_post_charge_facts
from tests.payments.conftest import create, settle, simulate
from tests.processes import Processes, database_url, process_env

# The test itself takes ~20 s; creating and dropping a database waits for a checkpoint, long on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

PG_DUMP, PG_RESTORE = shutil.which("pg_dump"), shutil.which("pg_restore")


def libpq_env() -> dict:
    db = connection.settings_dict
    env = {**os.environ, "PGHOST": db["HOST"] or "127.0.0.1", "PGPORT": str(db["PORT"] or 5432)}
    if db["USER"]:
        env["PGUSER"] = db["USER"]
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    return env


def server_admin(statement: str) -> None:
    """CREATE / DROP DATABASE, on a connection to the `postgres` database (outside any transaction)."""
    env = libpq_env()
    with psycopg.connect(dbname="postgres", host=env["PGHOST"], port=env["PGPORT"], user=env.get("PGUSER"),
                         password=env.get("PGPASSWORD"), autocommit=True) as conn:
        conn.execute(statement)


def row_counts(dbname: str) -> dict[str, int]:
    env = libpq_env()
    with psycopg.connect(dbname=dbname, host=env["PGHOST"], port=env["PGPORT"], user=env.get("PGUSER"),
                         password=env.get("PGPASSWORD"), autocommit=True) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        return {table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}


@pytest.fixture
def restored_name():
    name = f"{connection.settings_dict['NAME']}_restored"
    server_admin(f'DROP DATABASE IF EXISTS "{name}"')
    yield name
    server_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.skipif(not (PG_DUMP and PG_RESTORE), reason="pg_dump / pg_restore not installed")
def test_a_dump_restored_into_a_fresh_database_verifies(api, devnet, anvil_chain, restored_name, tmp_path):
    # Given a paid intent, its ledger postings and audit records
    settle(devnet, anvil_chain)
    intent = create(api, amount=1000)
    assert simulate(api, intent["id"]).status_code == 200
    settle(devnet, anvil_chain, mine_blocks=2)
    assert PaymentIntent.objects.get(id=intent["id"]).status == "succeeded"
    assert ledger_post_charge_facts() == 1
    with transaction.atomic():
        for i in range(3):
            audit_record(actor=command_actor("restore test"), action="thing.touch", obj=ObjectRef("test.thing", i),
                         reason="before the backup")
    assert JournalTransaction.objects.exists()
    source = connection.settings_dict["NAME"]
    dump = tmp_path / "gateway.dump"

    # When it is dumped (custom format: one consistent snapshot) and restored into a fresh database
    env = libpq_env()
    subprocess.run([PG_DUMP, "--format=custom", "--no-owner", "--file", str(dump), source], env=env, check=True,
                   timeout=60, capture_output=True)
    server_admin(f'CREATE DATABASE "{restored_name}"')
    subprocess.run([PG_RESTORE, "--no-owner", "--exit-on-error", "--dbname", restored_name, str(dump)], env=env,
                   check=True, timeout=60, capture_output=True)

    # Then the audit chain and the ledger verify against the restored copy, run as the operator would
    url = database_url().rsplit("/", 1)[0] + f"/{restored_name}"
    runs = Processes(tmp_path)
    try:
        started = [runs.manage(*args, env=process_env(DATABASE_URL=url))
                   for args in (("audit", "verify"), ("ledger", "check"))]
        for process, log in started:
            assert process.wait(timeout=90) == 0, log.read_text()
        assert "audit chain OK" in started[0][1].read_text()
    finally:
        runs.stop_all()
    # and every table holds as many rows as the original
    original, copy = row_counts(source), row_counts(restored_name)
    assert copy == original
    assert original["audit_auditrecord"] >= 3 and original["settlements_ledgerentry"] >= 2
