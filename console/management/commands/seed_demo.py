"""python manage.py seed_demo [--customers N] [--months M] [--seed S]"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils import timezone

from common.progress import progress_bar
from console import demo
from customers.models import Bill, Customer, ServiceArea
from customers.permissions import ROLES
from payments.models import Partner, Payment, PaymentBill, PaymentEvent

MODELS = {
    "customers_customer": Customer,
    "customers_bill": Bill,
    "payments_payment": Payment,
    "payments_paymentbill": PaymentBill,
    "payments_paymentevent": PaymentEvent,
}
DEMO_PASSWORD = "demo-2026-HaTinh"  # noqa: S105 - development only, created only with DEBUG on
# Parents first; bills point at payments through a deferred foreign key.
ORDER = (
    ("customers", "customers_customer"),
    ("payments", "payments_payment"),
    ("bills", "customers_bill"),
    ("lines", "payments_paymentbill"),
    ("events", "payments_paymentevent"),
)


@contextmanager
def _indexes_built_after_load(tables: list[str]) -> Iterator[None]:
    """Load empty PostgreSQL tables without their secondary indexes and constraints, then
    build them once, sorted, as pg_restore does: many times faster than maintaining a dozen
    indexes row by row. Re-adding the constraints checks every loaded row, set-based."""
    if connection.vendor != "postgresql":
        yield
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        # Room to sort each index in memory while building it (this transaction only).
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute(
            """
            SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
            FROM pg_constraint
            WHERE conrelid = ANY(%s::regclass[]) AND contype IN ('u', 'f', 'c')
            ORDER BY contype = 'f' DESC
            """,
            [tables],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            """
            SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid)
            FROM pg_index
            WHERE indrelid = ANY(%s::regclass[]) AND NOT indisprimary
              AND indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conindid <> 0)
            """,
            [tables],
        )
        indexes = cursor.fetchall()
        for table, name, _kind, _definition in constraints:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {quote(name)}")
        for name, _definition in indexes:
            cursor.execute(f"DROP INDEX {name}")
    yield
    with connection.cursor() as cursor:
        for _name, definition in indexes:
            cursor.execute(definition)
        for table, name, _kind, definition in reversed(constraints):
            cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {quote(name)} {definition}")


def _period(text: str) -> datetime.date:
    try:
        return datetime.datetime.strptime(text, "%Y-%m").date()  # noqa: DTZ007 - a date only
    except ValueError:
        raise CommandError(f"--until must be YYYY-MM, not {text!r}") from None


class Command(BaseCommand):
    help = "Load deterministic demo data: Hà Tĩnh service areas, customers, bills and payments."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=2000)
        parser.add_argument("--months", type=int, default=12)
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument(
            "--until", type=_period, help="last billed month, YYYY-MM (default: last month)"
        )
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when customers already exist"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count, months = options["customers"], options["months"]
        if count < 1 or not 1 <= months <= 120:
            raise CommandError("--customers must be at least 1 and --months between 1 and 120")
        if Customer.objects.exists():
            if options["if_empty"]:
                self.stdout.write("Customers already exist: demo data not loaded.")
                return
            raise CommandError("The database already has customers; seed an empty database.")
        today = timezone.localdate()
        until = options["until"] or demo.month_start(today, -1)
        started = time.monotonic()
        area_ids = self._areas()
        partner_ids = dict(Partner.objects.values_list("code", "id"))
        province = demo.DemoProvince(
            seed=options["seed"],
            customers=count,
            months=months,
            until=until,
            today=today,
            area_ids=area_ids,
            partner_ids=partner_ids,
        )
        totals = dict.fromkeys((name for name, _table in ORDER), 0)
        write = self._copy if connection.vendor == "postgresql" else self._orm
        with (
            transaction.atomic(),
            _indexes_built_after_load(list(MODELS)),
            progress_bar(total=count, unit="customers", description="seed") as bar,
        ):
            for tables in province.batches():
                for name, table in ORDER:
                    rows = getattr(tables, name)
                    write(table, rows)
                    totals[name] += len(rows)
                bar.update(len(tables.customers))
            with connection.cursor() as cursor:
                for statement in connection.ops.sequence_reset_sql(no_style(), [Customer, Bill]):
                    cursor.execute(statement)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for table in MODELS:
                    cursor.execute(f"ANALYZE {table}")
        self.stdout.write(
            f"Seeded {totals['customers']} customers, {totals['bills']} bills and "
            f"{totals['payments']} payments ({months} months to {until:%Y-%m}, seed "
            f"{options['seed']}) in {time.monotonic() - started:.1f} s."
        )
        examples = (
            Customer.objects.filter(bills__status=Bill.Status.UNPAID)
            .order_by("id")
            .values_list("code", flat=True)
            .distinct()[:3]
        )
        if examples:
            self.stdout.write("Customers with bills to pay: " + ", ".join(examples))
        if settings.DEBUG:
            self._demo_staff()

    def _demo_staff(self) -> None:
        """One sign-in per console role, for a demo on a developer's machine only (DEBUG)."""
        for role in ROLES:
            user, created = User.objects.get_or_create(username=f"demo-{role}")
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
                group = Group.objects.filter(name=role).first()
                if group:
                    user.groups.add(group)
        self.stdout.write(
            "Console /console/: demo-agent, demo-supervisor, demo-finance, password "
            f"{DEMO_PASSWORD} (development only)."
        )

    def _areas(self) -> dict[str, int]:
        ids = {}
        for area in demo.AREAS:
            obj, _ = ServiceArea.objects.update_or_create(
                code=area.code, defaults={"name": area.name}
            )
            ids[area.code] = obj.pk
        return ids

    def _copy(self, table: str, rows: list[tuple]) -> None:
        if not rows:
            return
        columns = ", ".join(demo.COLUMNS[table])
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    def _orm(self, table: str, rows: list[tuple]) -> None:
        model = MODELS[table]
        columns = demo.COLUMNS[table]
        objects = [model(**dict(zip(columns, row, strict=True))) for row in rows]
        model._default_manager.bulk_create(objects, batch_size=500)
