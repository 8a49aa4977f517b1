"""factory_boy factories and small builders shared by the tests."""

from __future__ import annotations

import datetime
import importlib
import itertools
import time
from typing import Any

import factory
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.utils import timezone

from common.localtime import GMT7
from customers.models import Bill, Customer, ServiceArea

_partners_migration = importlib.import_module("payments.migrations.0002_partners")
_wallets_migration = importlib.import_module("payments.migrations.0008_wallet_pages")
_roles_migration = importlib.import_module("customers.migrations.0004_console_roles")


def load_partners() -> None:
    from django.apps import apps

    _partners_migration.load(apps, None)
    _wallets_migration.load(apps, None)


def load_roles() -> None:
    from django.apps import apps

    _roles_migration.load(apps, None)


class ServiceAreaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceArea
        django_get_or_create = ("code",)

    code = "PA14HT"
    name = "Điện lực Thành phố Hà Tĩnh"


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    code = factory.Sequence(lambda n: f"PA14HT{n:07d}")
    name = "Nguyễn Văn An"
    address = "Số 12, đường Trần Phú, phường Bắc Hà, TP Hà Tĩnh"
    phone = "0912345678"
    email = "an.nguyen@example.vn"
    service_area = factory.SubFactory(ServiceAreaFactory)
    search_text = factory.LazyAttribute(
        lambda c: Customer.build_search_text(
            code=c.code, name=c.name, phone=c.phone, address=c.address
        )
    )


def _period(months_ago: int) -> datetime.date:
    today = timezone.localdate().replace(day=1)
    year, month = divmod(today.year * 12 + today.month - 1 - months_ago, 12)
    return datetime.date(year, month + 1, 1)


class BillFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Bill

    class Params:
        months_ago = 1

    customer = factory.SubFactory(CustomerFactory)
    number = factory.Sequence(lambda n: f"HD{n:010d}")
    period = factory.LazyAttribute(lambda b: _period(b.months_ago))
    kwh = 180
    amount = 452_160
    due_date = factory.LazyAttribute(lambda b: b.period + datetime.timedelta(days=44))


def customer_with_bills(*, unpaid: int = 2, amounts: list[int] | None = None, **kwargs: Any):
    """A customer with `unpaid` unpaid bills of the last months (oldest first)."""
    customer = CustomerFactory(**kwargs)
    amounts = amounts or [452_160 + 10_000 * i for i in range(unpaid)]
    bills = [
        BillFactory(customer=customer, months_ago=len(amounts) - i, amount=amount)
        for i, amount in enumerate(amounts)
    ]
    return customer, bills


ROLE_GROUPS = ("agent", "supervisor", "finance")


def staff_user(role: str, username: str | None = None, password: str = "S3cure-pass-2026") -> User:
    """A staff member in one role group (groups and their permissions come from migrations)."""
    user = User.objects.create_user(
        username=username or f"{role}-{User.objects.count() + 1}",
        password=password,
        is_staff=role != "agent",
    )
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    return user


# --- What a bank sends -----------------------------------------------------------------------------
# Sender ids differ between runs too: fault tests share brokers and inbox keys across processes.
_sender_ids = itertools.count(int(time.time()) % 10_000 * 100_000)


def new_sender_id() -> int:
    return next(_sender_ids)


def transfer_body(
    payment: Any, *, sender_id: int | None = None, reference_code: str = "", **changes: Any
) -> dict[str, Any]:
    """A SePay-shaped notification of the credit for a VietQR payment: the bank's own text
    around the lower-cased reference, and a phone number, as people write their notes."""
    from payments.channels.transfers import notifications

    number = sender_id if sender_id is not None else new_sender_id()
    body = {
        "id": number,
        "gateway": "Vietcombank",
        "transactionDate": timezone.now().astimezone(GMT7).strftime(notifications.DATE_FORMAT),
        "accountNumber": settings.VIETQR_ACCOUNT,
        "code": None,
        "content": f"MBVCB.{number}.{payment.reference.lower()}.CT tu 0912345678",
        "transferType": "in",
        "transferAmount": payment.amount,
        "accumulated": None,
        "subAccount": None,
        "referenceCode": reference_code or f"FT{number}",
    }
    body.update(changes)
    return body


def poison_settling(monkeypatch: Any, payment: Any, error: str) -> Any:
    """Make settling any batch that names `payment` raise `error` (a rule the database
    refuses); returns the real settle function, to put back."""
    from payments import services

    settle = services.payments_mark_succeeded

    def refuse(**kwargs: Any) -> Any:
        if any(item.payment_id == payment.pk for item in kwargs["settlements"]):
            raise RuntimeError(error)
        return settle(**kwargs)

    monkeypatch.setattr(services, "payments_mark_succeeded", refuse)
    return settle
