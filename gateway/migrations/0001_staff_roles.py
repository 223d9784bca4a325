"""The staff roles (gateway/roles.py) as Django groups with their exact permissions."""
from django.db import migrations


def seed(apps, schema_editor):
    from gateway.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("audit", "0001_initial"),
        ("merchants", "0007_staff_permissions"),
        ("wallets", "0012_staff_permissions"),
        ("payments", "0012_staff_corrections"),
        ("settlements", "0010_ledger_adjustments"),
        ("axes", "__latest__"),
    ]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
