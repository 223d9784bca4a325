import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import merchants.models


def owners_from_merchant_user(apps, schema_editor):
    """Each merchant's login becomes the owner of its team."""
    Merchant = apps.get_model("merchants", "Merchant")
    Membership = apps.get_model("merchants", "Membership")
    Membership.objects.bulk_create(
        [Membership(merchant_id=m.pk, user_id=m.user_id, role="owner")
         for m in Merchant.objects.filter(user__isnull=False).only("pk", "user_id")],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("merchants", "0004_encrypt_secrets"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Membership",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("role", models.CharField(choices=[("owner", "Owner"), ("admin", "Administrator"),
                                                   ("developer", "Developer"), ("finance", "Finance"),
                                                   ("viewer", "Viewer")], max_length=16)),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("merchant", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                               related_name="memberships", to="merchants.merchant")),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="memberships",
                                           to=settings.AUTH_USER_MODEL)),
            ],
            options={
                "indexes": [models.Index(fields=["user", "created"], name="membership_user_idx")],
                "constraints": [models.UniqueConstraint(fields=("merchant", "user"), name="membership_unique_user")],
            },
        ),
        migrations.CreateModel(
            name="Invitation",
            fields=[
                ("id", models.CharField(default=merchants.models._invitation_id, editable=False, max_length=32,
                                        primary_key=True, serialize=False)),
                ("email", models.EmailField(max_length=254)),
                ("role", models.CharField(choices=[("owner", "Owner"), ("admin", "Administrator"),
                                                   ("developer", "Developer"), ("finance", "Finance"),
                                                   ("viewer", "Viewer")], max_length=16)),
                ("token_hash", models.CharField(editable=False, max_length=64, unique=True)),
                ("created", models.DateTimeField(auto_now_add=True)),
                ("expires_at", models.DateTimeField()),
                ("accepted_at", models.DateTimeField(blank=True, null=True)),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                ("invited_by", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL,
                                                 related_name="+", to=settings.AUTH_USER_MODEL)),
                ("merchant", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                               related_name="invitations", to="merchants.merchant")),
            ],
            options={"indexes": [models.Index(fields=["merchant", "-created"], name="invitation_list_idx")]},
        ),
        migrations.RunPython(owners_from_merchant_user, migrations.RunPython.noop),
    ]
