from django.db import migrations

# As payments 0015: the varchar_pattern_ops twins of the deposit address's indexed varchar columns serve only
# LIKE 'prefix%', which nothing runs on them, and cost every address drawn one more index entry each.
LIKE_TWINS = [
    ("wallets_depositaddress_address_8a410bcc_like", "wallets_depositaddress", "address"),
    ("wallets_depositaddress_merchant_id_e15d7b2d_like", "wallets_depositaddress", "merchant_id"),
]


class Migration(migrations.Migration):

    dependencies = [
        ("wallets", "0015_network_unique_chain_id"),
    ]

    operations = [
        migrations.RunSQL(
            [f'DROP INDEX IF EXISTS "{name}"' for name, _, _ in LIKE_TWINS],
            [f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}" varchar_pattern_ops)'
             for name, table, column in LIKE_TWINS],
        ),
    ]
