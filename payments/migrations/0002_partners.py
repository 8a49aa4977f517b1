"""The utility's collecting partners (docs/interfaces.md), the cash channels and the sandbox bank."""

from django.db import migrations

# code, name, kind, NAPAS BIN, offers redirect, uses the collection API
PARTNERS = [
    ("VCB", "Vietcombank", "bank", "970436", False, True),
    ("VTB", "VietinBank", "bank", "970415", False, True),
    ("BIDV", "BIDV", "bank", "970418", False, True),
    ("AGRIBANK", "Agribank", "bank", "970405", False, True),
    ("TCB", "Techcombank", "bank", "970407", False, True),
    ("MB", "MB Bank", "bank", "970422", False, True),
    ("ACB", "ACB", "bank", "970416", False, True),
    ("VPB", "VPBank", "bank", "970432", False, True),
    ("TPB", "TPBank", "bank", "970423", False, True),
    ("STB", "Sacombank", "bank", "970403", False, True),
    ("SHB", "SHB", "bank", "970443", False, True),
    ("VNPAY", "VNPAY", "intermediary", "", True, True),
    ("MOMO", "Ví MoMo", "intermediary", "", False, True),
    ("ZALOPAY", "ZaloPay", "intermediary", "", False, True),
    ("PAYOO", "Payoo", "intermediary", "", False, True),
    ("VIETTELMONEY", "Viettel Money", "intermediary", "", False, True),
    ("VNPOST", "Bưu điện Việt Nam (VNPost)", "intermediary", "", False, True),
    ("COUNTER", "Quầy thu tiền điện lực", "cash", "", False, False),
    ("COLLECTOR", "Thu ngân viên tại nhà", "cash", "", False, False),
    ("SANDBOX", "Ngân hàng thử nghiệm (sandbox)", "gateway", "", True, True),
]


def load(apps, schema_editor):
    Partner = apps.get_model("payments", "Partner")
    for order, (code, name, kind, napas_bin, redirect, collects) in enumerate(PARTNERS, start=1):
        Partner.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "kind": kind,
                "napas_bin": napas_bin,
                "offers_redirect": redirect,
                "collects": collects,
                "display_order": order * 10,
            },
        )


def unload(apps, schema_editor):
    apps.get_model("payments", "Partner").objects.filter(
        code__in=[row[0] for row in PARTNERS]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("payments", "0001_initial")]

    operations = [migrations.RunPython(load, unload)]
