"""The protocol of a partner's payment page, and the wallets MoMo and ZaloPay offering theirs."""

from django.db import migrations, models

# code: the protocol of its payment page (it offers one from now on)
WALLETS = {"MOMO": "momo", "ZALOPAY": "zalopay"}


def load(apps, schema_editor):
    Partner = apps.get_model("payments", "Partner")
    for code, protocol in WALLETS.items():
        Partner.objects.filter(code=code).update(offers_redirect=True, redirect_protocol=protocol)


def unload(apps, schema_editor):
    apps.get_model("payments", "Partner").objects.filter(code__in=list(WALLETS)).update(
        offers_redirect=False, redirect_protocol="vnpay"
    )


class Migration(migrations.Migration):
    dependencies = [("payments", "0007_reminders")]

    operations = [
        migrations.AddField(
            model_name="partner",
            name="redirect_protocol",
            field=models.CharField(
                choices=[
                    ("vnpay", "VNPay 2.1.0 payment page"),
                    ("momo", "MoMo wallet (API v2)"),
                    ("zalopay", "ZaloPay wallet (API v2)"),
                ],
                default="vnpay",
                max_length=16,
                verbose_name="payment page protocol",
            ),
        ),
        migrations.RunPython(load, unload),
    ]
