from django.db import migrations

# The sender (`manage.py deliver_webhooks`, LISTEN payments_event) is woken only by events that will become a
# delivery: the statement's new rows (a transition table) are matched against the enabled, not deleted endpoints of
# their merchant and mode that subscribe to their type or to "*" (the same rule as payments/webhooks/fanout.py,
# through the endpoint's merchant index). Events nobody wants (most of them, for a merchant without endpoints) wake
# nobody; the sender's poll (every half second) still marks them fanned out. An endpoint committed after an event's
# check but before its commit misses that wake-up only: the poll fans the event out.
CREATE = """
CREATE OR REPLACE FUNCTION payments_event_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM new_events ev JOIN merchants_webhookendpoint e
          ON e.merchant_id = ev.merchant_id AND e.livemode = ev.livemode AND e.status = 'enabled' AND NOT e.deleted
         AND (e.enabled_events @> to_jsonb(ev.type::text) OR e.enabled_events @> '"*"'::jsonb)
    ) THEN
        PERFORM pg_notify('payments_event', '');
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS payments_event_notify ON payments_event;
CREATE TRIGGER payments_event_notify AFTER INSERT ON payments_event
    REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION payments_event_notify();
"""
# Back to migration 0004's trigger: a notification for every statement that inserts events.
DROP = """
CREATE OR REPLACE FUNCTION payments_event_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('payments_event', '');
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS payments_event_notify ON payments_event;
CREATE TRIGGER payments_event_notify AFTER INSERT ON payments_event
    FOR EACH STATEMENT EXECUTE FUNCTION payments_event_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("payments", "0004_event_notify"), ("merchants", "0002_webhook_endpoints")]
    operations = [migrations.RunSQL(CREATE, DROP)]
