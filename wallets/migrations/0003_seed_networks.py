from django.db import migrations


def seed(apps, schema_editor):
    from wallets.networks import MAINNETS, TESTNETS, rpc_env_name

    Network = apps.get_model("wallets", "Network")
    Token = apps.get_model("wallets", "Token")
    for livemode, rows in ((True, MAINNETS), (False, TESTNETS)):
        for code, api_name, display, chain_id, native, block_ms, finality, confs, explorer, tokens in rows:
            network, _ = Network.objects.get_or_create(
                code=code,
                defaults=dict(
                    api_name=api_name, display_name=display, chain_id=chain_id, livemode=livemode,
                    native_currency=native, block_time_ms=block_ms, finality=finality, confirmations=confs or 12,
                    explorer_url=explorer, rpc_env=rpc_env_name(code),
                ),
            )
            for currency, address, decimals in tokens:
                Token.objects.get_or_create(
                    network=network, currency=currency,
                    defaults=dict(contract_address=address.lower(), decimals=decimals),
                )


class Migration(migrations.Migration):
    dependencies = [("wallets", "0002_address_index_sequence")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
