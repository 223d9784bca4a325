from django.db import migrations, models


def seed(apps, schema_editor):
    """The known chains' public RPC URLs (wallets.networks.PUBLIC_RPC_URLS) on rows that have none."""
    from wallets.networks import PUBLIC_RPC_URLS

    Network = apps.get_model("wallets", "Network")
    for code, url in PUBLIC_RPC_URLS.items():
        Network.objects.filter(code=code, public_rpc_url="").update(public_rpc_url=url)


class Migration(migrations.Migration):

    dependencies = [
        ("wallets", "0012_staff_permissions"),
    ]

    operations = [
        migrations.AddField(
            model_name="network",
            name="public_rpc_url",
            field=models.URLField(blank=True, help_text="A public RPC URL without any secret, given to customers' browser wallets to add this chain on the checkout (wallet_addEthereumChain); empty: the wallet must know the chain. Never the watcher's RPC URL: those often carry an API key."),
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
