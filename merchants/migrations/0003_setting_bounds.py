"""Bounds on the merchant settings that decide money (issue 11): an underpayment tolerance of at most 1000 bps and
an expiry of 5 minutes to 7 days, as validators (forms, the admin) and as CHECK constraints. Rows out of bounds are
first brought to the nearest bound, so that the constraints can be added."""
import django.core.validators
from django.db import migrations, models

TOLERANCE_MAX = 1000
EXPIRY_MIN = 5
EXPIRY_MAX = 7 * 24 * 60


def clamp_settings(apps, schema_editor):
    Merchant = apps.get_model("merchants", "Merchant")
    Merchant.objects.filter(underpayment_tolerance_bps__gt=TOLERANCE_MAX).update(
        underpayment_tolerance_bps=TOLERANCE_MAX
    )
    Merchant.objects.filter(payment_expiry_minutes__lt=EXPIRY_MIN).update(payment_expiry_minutes=EXPIRY_MIN)
    Merchant.objects.filter(payment_expiry_minutes__gt=EXPIRY_MAX).update(payment_expiry_minutes=EXPIRY_MAX)


class Migration(migrations.Migration):

    dependencies = [
        ("merchants", "0002_webhook_endpoints"),
    ]

    operations = [
        migrations.RunPython(clamp_settings, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="merchant",
            name="payment_expiry_minutes",
            field=models.PositiveIntegerField(
                default=30,
                help_text="How long a payment intent waits for funds before it expires (5 minutes to 7 days).",
                validators=[django.core.validators.MinValueValidator(EXPIRY_MIN),
                            django.core.validators.MaxValueValidator(EXPIRY_MAX)],
            ),
        ),
        migrations.AlterField(
            model_name="merchant",
            name="underpayment_tolerance_bps",
            field=models.PositiveIntegerField(
                default=0,
                help_text="An intent short by at most this many basis points still succeeds (at most 1000, 10%).",
                validators=[django.core.validators.MaxValueValidator(TOLERANCE_MAX)],
            ),
        ),
        migrations.AddConstraint(
            model_name="merchant",
            constraint=models.CheckConstraint(
                condition=models.Q(("underpayment_tolerance_bps__gte", 0),
                                   ("underpayment_tolerance_bps__lte", TOLERANCE_MAX)),
                name="merchant_underpayment_tolerance_bps_range",
            ),
        ),
        migrations.AddConstraint(
            model_name="merchant",
            constraint=models.CheckConstraint(
                condition=models.Q(("payment_expiry_minutes__gte", EXPIRY_MIN),
                                   ("payment_expiry_minutes__lte", EXPIRY_MAX)),
                name="merchant_payment_expiry_minutes_range",
            ),
        ),
    ]
