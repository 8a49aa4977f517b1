"""The console's roles as groups, each with exactly the permissions its work needs.

- agent: answers customers, takes cash at the counter, matches transfers, asks the bank again,
  resends receipts. Never gives money back.
- supervisor: everything an agent does, plus refunds, closing transfers settled outside the
  portal, the audit log and the non-cash dashboard.
- finance: the non-cash dashboard, its cash-customer export and the audit log; no customer
  pages and no actions.

Permissions are normally created after all migrations (post_migrate); they are created here
first so the groups can be given them in the same migration. `load` is idempotent: tests that
flush the database call it again (tests/console/conftest.py).
"""

from django.db import migrations

AGENT = [
    "customers.use_console",
    "customers.view_customer",
    "customers.view_queues",
    "customers.recheck_payment",
    "customers.resend_receipt",
    "customers.record_cash_payment",
    "customers.assign_transfer",
]
SUPERVISOR = [
    *AGENT,
    "customers.refund_payment",
    "customers.resolve_transfer",
    "customers.view_auditentry",
    "customers.view_noncash_report",
    "customers.export_cash_customers",
]
FINANCE = [
    "customers.use_console",
    "customers.view_noncash_report",
    "customers.export_cash_customers",
    "customers.view_auditentry",
]
ROLES = {"agent": AGENT, "supervisor": SUPERVISOR, "finance": FINANCE}

CUSTOM = [
    ("use_console", "Can sign in to the staff console"),
    ("view_queues", "Can see the work queues"),
    ("recheck_payment", "Can ask the bank about a payment now"),
    ("resend_receipt", "Can resend a payment receipt"),
    ("record_cash_payment", "Can record a cash payment at the counter"),
    ("assign_transfer", "Can match a bank transfer to a payment"),
    ("resolve_transfer", "Can close a bank transfer settled outside the portal"),
    ("refund_payment", "Can mark a payment refunded"),
    ("view_noncash_report", "Can see the non-cash dashboard"),
    ("export_cash_customers", "Can export the customers paying cash"),
]


def _permission(apps, label: str):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    app_label, codename = label.split(".")
    if codename.startswith("view_") and codename not in dict(CUSTOM):
        model = codename.removeprefix("view_")
        name = f"Can view {'audit entry' if model == 'auditentry' else model}"
    else:
        model, name = "auditentry", dict(CUSTOM)[codename]
    content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename=codename, defaults={"name": name}
    )
    return permission


def load(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for role, labels in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set([_permission(apps, label) for label in labels])


def unload(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0003_search_trigram_index"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="auditentry",
            options={
                "ordering": ["-at"],
                "permissions": CUSTOM,
                "verbose_name": "audit entry",
                "verbose_name_plural": "audit log",
            },
        ),
        migrations.RunPython(load, unload),
    ]
