from django.db import migrations


def seed(apps, schema_editor):
    from wallets.networks import seed_networks

    seed_networks(apps.get_model("wallets", "Network"), apps.get_model("wallets", "Token"))


class Migration(migrations.Migration):
    dependencies = [("wallets", "0002_address_index_sequence")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
