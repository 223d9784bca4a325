"""The staff roles again (gateway/roles.py) for the address blocklist: every role reads blocked addresses, held
deposits and issuer blacklist alerts; security adds / deactivates addresses, releases or keeps held deposits and
acknowledges alerts."""
from django.db import migrations


def sync(apps, schema_editor):
    from gateway.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [("gateway", "0002_staff_roles_merged"), ("wallets", "0014_blocklist"),
                    ("payments", "0014_held_deposits")]
    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
