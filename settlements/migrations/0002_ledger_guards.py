from django.db import migrations

# What the database itself guarantees about the ledger, whatever writes to it (services, raw SQL, a bug):
# 1. Append-only: an UPDATE or DELETE of a journal transaction or an entry is refused.
# 2. Balanced: at COMMIT (DEFERRABLE INITIALLY DEFERRED constraint triggers, so the entries of a transaction can be
#    inserted one by one), every journal transaction that got a row or an entry in this database transaction has at
#    least two entries, all in accounts of its asset (network, token), summing to zero. A raw INSERT of an unbalanced
#    journal transaction fails at COMMIT and takes the whole transaction with it.
# (TRUNCATE is left to the owner: the test suite's flush needs it.)
CREATE = r"""
CREATE FUNCTION settlements_ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER settlements_journal_append_only BEFORE UPDATE OR DELETE ON settlements_journaltransaction
    FOR EACH ROW EXECUTE FUNCTION settlements_ledger_refuse_change();
CREATE TRIGGER settlements_entry_append_only BEFORE UPDATE OR DELETE ON settlements_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION settlements_ledger_refuse_change();

CREATE FUNCTION settlements_journal_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    jid bigint;
    j_network bigint;
    j_token bigint;
    total numeric;
    entries bigint;
    foreign_entries bigint;
BEGIN
    IF TG_TABLE_NAME = 'settlements_ledgerentry' THEN
        jid := NEW.journal_id;
    ELSE
        jid := NEW.id;
    END IF;
    SELECT network_id, token_id INTO j_network, j_token FROM settlements_journaltransaction WHERE id = jid;
    SELECT COALESCE(SUM(e.amount), 0), COUNT(*),
           COUNT(*) FILTER (WHERE a.network_id <> j_network OR a.token_id IS DISTINCT FROM j_token)
      INTO total, entries, foreign_entries
      FROM settlements_ledgerentry e JOIN settlements_ledgeraccount a ON a.id = e.account_id
     WHERE e.journal_id = jid;
    IF entries < 2 THEN
        RAISE EXCEPTION 'journal transaction % has % entries (two or more needed)', jid, entries
            USING ERRCODE = 'check_violation';
    END IF;
    IF total <> 0 THEN
        RAISE EXCEPTION 'journal transaction % does not balance: its entries sum to %', jid, total
            USING ERRCODE = 'check_violation';
    END IF;
    IF foreign_entries > 0 THEN
        RAISE EXCEPTION 'journal transaction % has % entries in accounts of another asset', jid,
            foreign_entries USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER settlements_entry_balanced AFTER INSERT ON settlements_ledgerentry
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION settlements_journal_check();
CREATE CONSTRAINT TRIGGER settlements_journal_balanced AFTER INSERT ON settlements_journaltransaction
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION settlements_journal_check();
"""
DROP = """
DROP TRIGGER IF EXISTS settlements_journal_balanced ON settlements_journaltransaction;
DROP TRIGGER IF EXISTS settlements_entry_balanced ON settlements_ledgerentry;
DROP FUNCTION IF EXISTS settlements_journal_check();
DROP TRIGGER IF EXISTS settlements_entry_append_only ON settlements_ledgerentry;
DROP TRIGGER IF EXISTS settlements_journal_append_only ON settlements_journaltransaction;
DROP FUNCTION IF EXISTS settlements_ledger_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("settlements", "0001_initial")]
    operations = [migrations.RunSQL(CREATE, DROP)]
