"""Mark the unmatched deposits whose refund is not failed or canceled (payments.UnmatchedDeposit.refund_reference,
set by the refunds from now on), so that no deposit refunded before this release can be assigned to an intent."""
from django.db import migrations


def backfill(apps, schema_editor):
    Refund = apps.get_model("settlements", "Refund")
    UnmatchedDeposit = apps.get_model("payments", "UnmatchedDeposit")
    active = (Refund.objects.filter(unmatched_deposit__isnull=False).exclude(status__in=["failed", "canceled"])
              .values_list("unmatched_deposit_id", "id"))
    for deposit_id, refund_id in active:
        UnmatchedDeposit.objects.filter(pk=deposit_id).update(refund_reference=refund_id)


class Migration(migrations.Migration):
    dependencies = [
        ("settlements", "0010_ledger_adjustments"),
        ("payments", "0013_unmatched_deposit_refund_reference"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
