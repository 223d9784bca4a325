"""The staff roles again (gateway/roles.py), now that they cover the models and actions merged after 0001 (hot /
cold, sweeps, refunds, payouts, the inline rows, freezes): groups created by 0001 get the new permissions."""
from django.db import migrations


def sync(apps, schema_editor):
    from gateway.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [("gateway", "0001_staff_roles")]
    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
