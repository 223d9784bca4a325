"""Secrets encrypted at rest under GATEWAY_SECRETS_KEK (merchants.secrets): webhook endpoints' signing secrets are
sealed in place, and django-otp's TOTP devices move to EncryptedTotpDevice with their seeds sealed (their clear rows
are deleted). Needs GATEWAY_SECRETS_KEK only when there is something to encrypt. Reversible (decrypts)."""

import django.db.models.deletion
import django_otp.plugins.otp_totp.models
import merchants.fields
from merchants.secrets import is_sealed, secret_open, secret_seal
from django.conf import settings
from django.db import migrations, models


ENDPOINT_SECRETS = ("secret", "previous_secret")
TOTP_FIELDS = ("name", "confirmed", "throttling_failure_timestamp", "throttling_failure_count", "last_used_at", "key",
               "step", "t0", "digits", "tolerance", "drift", "last_t", "user_id")


def _endpoint_secrets_convert(schema_editor, *, seal: bool):
    """Seal (or open) every webhook endpoint's secrets in place, with raw SQL: the columns, not a model."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT id, secret, previous_secret FROM merchants_webhookendpoint")
        for endpoint_id, *values in cursor.fetchall():
            new = []
            for column, value in zip(ENDPOINT_SECRETS, values):
                slot = f"merchants_webhookendpoint.{column}:{endpoint_id}".encode()
                if value and is_sealed(value) != seal:
                    value = secret_seal(value, slot=slot) if seal else secret_open(value, slot=slot)
                new.append(value)
            if new != values:
                cursor.execute("UPDATE merchants_webhookendpoint SET secret = %s, previous_secret = %s WHERE id = %s",
                               [*new, endpoint_id])


def _totp_devices_move(source, target):
    """Copy every device into the other model (the key is sealed or opened by EncryptedTotpDevice.key), then delete
    the source rows."""
    for device in source.objects.order_by("pk"):
        copy = target.objects.create(**{name: getattr(device, name) for name in TOTP_FIELDS})
        target.objects.filter(pk=copy.pk).update(created_at=device.created_at)  # not the auto_now_add of the copy
    source.objects.all().delete()


def encrypt(apps, schema_editor):
    _endpoint_secrets_convert(schema_editor, seal=True)
    _totp_devices_move(apps.get_model("otp_totp", "TOTPDevice"), apps.get_model("merchants", "EncryptedTotpDevice"))


def decrypt(apps, schema_editor):
    _endpoint_secrets_convert(schema_editor, seal=False)
    _totp_devices_move(apps.get_model("merchants", "EncryptedTotpDevice"), apps.get_model("otp_totp", "TOTPDevice"))


class Migration(migrations.Migration):

    dependencies = [
        ('merchants', '0003_setting_bounds'),
        ('otp_totp', '0003_add_timestamps'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='SecretsKey',
            fields=[
                ('id', models.CharField(editable=False, max_length=8, primary_key=True, serialize=False)),
                ('wrapped_dek', models.BinaryField()),
                ('kek_fingerprint', models.CharField(editable=False, max_length=16)),
                ('created', models.DateTimeField(auto_now_add=True)),
                ('rewrapped', models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.AlterField(
            model_name='webhookendpoint',
            name='previous_secret',
            field=merchants.fields.EncryptedTextField(blank=True, default='', editable=False),
        ),
        migrations.AlterField(
            model_name='webhookendpoint',
            name='secret',
            field=merchants.fields.EncryptedTextField(editable=False),
        ),
        migrations.CreateModel(
            name='EncryptedTotpDevice',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text='The human-readable name of this device.', max_length=64)),
                ('confirmed', models.BooleanField(default=True, help_text='Is this device ready for use?')),
                ('throttling_failure_timestamp', models.DateTimeField(blank=True, default=None, help_text='A timestamp of the last failed verification attempt. Null if last attempt succeeded.', null=True)),
                ('throttling_failure_count', models.PositiveIntegerField(default=0, help_text='Number of successive failed attempts.')),
                ('created_at', models.DateTimeField(auto_now_add=True, help_text='The date and time when this device was initially created in the system.', null=True)),
                ('last_used_at', models.DateTimeField(blank=True, help_text='The most recent date and time this device was used.', null=True)),
                ('key', merchants.fields.EncryptedTextField(bind_to='user', default=django_otp.plugins.otp_totp.models.default_key, editable=False, help_text='The hex-encoded secret key, encrypted at rest.')),
                ('step', models.PositiveSmallIntegerField(default=30, help_text='The time step in seconds.')),
                ('t0', models.BigIntegerField(default=0, help_text='The Unix time at which to begin counting steps.')),
                ('digits', models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6, help_text='The number of digits to expect in a token.')),
                ('tolerance', models.PositiveSmallIntegerField(default=1, help_text='The number of time steps in the past or future to allow.')),
                ('drift', models.SmallIntegerField(default=0, help_text='The number of time steps the prover is known to deviate from our clock.')),
                ('last_t', models.BigIntegerField(default=-1, help_text='The t value of the latest verified token. The next token must be at a higher time step.')),
                ('user', models.ForeignKey(help_text='The user that this device belongs to.', on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'TOTP device',
                'abstract': False,
            },
        ),
        migrations.RunPython(encrypt, decrypt),
    ]
