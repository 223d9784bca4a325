from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):
    """The portal's metadata search; built CONCURRENTLY so that payment creation never waits for it."""

    atomic = False
    dependencies = [("payments", "0010_monitoring_and_limits")]
    operations = [
        AddIndexConcurrently(
            model_name="paymentintent",
            index=GinIndex(fields=["metadata"], name="pi_metadata_idx", opclasses=["jsonb_path_ops"]),
        ),
    ]
