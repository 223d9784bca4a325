from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0007_charge_dust'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='paymentintent',
            index=models.Index(condition=models.Q(('status__in', ['requires_action', 'processing'])), fields=['merchant', 'livemode'], name='pi_attention_idx'),
        ),
    ]
