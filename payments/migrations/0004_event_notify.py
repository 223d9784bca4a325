from django.db import migrations

# One notification per INSERT statement on payments_event (not per row), so that `manage.py deliver_webhooks`
# (LISTEN payments_event) wakes within milliseconds of a commit; PostgreSQL delivers it only after the commit and
# folds identical notifications of one transaction into one.
CREATE = """
CREATE FUNCTION payments_event_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('payments_event', '');
    RETURN NULL;
END $$;
CREATE TRIGGER payments_event_notify AFTER INSERT ON payments_event
    FOR EACH STATEMENT EXECUTE FUNCTION payments_event_notify();
"""
DROP = """
DROP TRIGGER IF EXISTS payments_event_notify ON payments_event;
DROP FUNCTION IF EXISTS payments_event_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("payments", "0003_webhook_deliveries")]
    operations = [migrations.RunSQL(CREATE, DROP)]
