from django.db import migrations


class Migration(migrations.Migration):
    """Deposit-address indexes come from a sequence: concurrent creations never wait on each other, and a rolled
    back transaction burns its index instead of handing it out twice."""

    dependencies = [("wallets", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE SEQUENCE IF NOT EXISTS wallets_deposit_address_index_seq MINVALUE 0 START 0",
            "DROP SEQUENCE IF EXISTS wallets_deposit_address_index_seq",
        ),
    ]
