"""Who the utility bills, and for what: service areas, customers and their monthly bills."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.text import fold


class ServiceArea(models.Model):
    """A district branch of the utility (Điện lực), e.g. Điện lực Hồng Lĩnh."""

    code = models.CharField(_("code"), max_length=16, unique=True)
    name = models.CharField(_("name"), max_length=100, unique=True)

    class Meta:
        verbose_name = _("service area")
        verbose_name_plural = _("service areas")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    # Unique through Meta.constraints: one btree index, without the LIKE index `unique=True`
    # adds on PostgreSQL, which nothing here uses and every import would have to maintain.
    code = models.CharField(_("customer code"), max_length=32)
    name = models.CharField(_("name"), max_length=200)
    address = models.CharField(_("address"), max_length=300, blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    email = models.EmailField(_("e-mail"), blank=True)
    service_area = models.ForeignKey(
        ServiceArea,
        on_delete=models.PROTECT,
        related_name="customers",
        verbose_name=_("service area"),
    )
    is_active = models.BooleanField(_("active"), default=True)
    # Code, name, phone and address folded to lower-case ASCII, so agents can search without
    # accents; a trigram index on PostgreSQL keeps that search off a table scan.
    search_text = models.TextField(_("search text"), blank=True, editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["code"], name="customer_code_unique")]
        indexes = [models.Index(fields=["service_area", "code"], name="customer_area_code")]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @staticmethod
    def build_search_text(*, code: str, name: str, phone: str, address: str) -> str:
        # Phones as digits only, so "0912 345 678" and "0912345678" find the same customer.
        digits = "".join(ch for ch in phone if ch.isdigit())
        return fold(" ".join(part for part in (code, name, digits, address) if part))

    def refresh_search_text(self) -> None:
        self.search_text = self.build_search_text(
            code=self.code, name=self.name, phone=self.phone, address=self.address
        )


class Bill(models.Model):
    """One month's electricity bill. Amounts are whole VND."""

    class Status(models.TextChoices):
        UNPAID = "unpaid", _("unpaid")
        PAID = "paid", _("paid")

    number = models.CharField(_("bill number"), max_length=32)
    # Indexed by the (customer, period) unique constraint, whose first column it is.
    customer = models.ForeignKey(
        Customer,
        on_delete=models.PROTECT,
        related_name="bills",
        verbose_name=_("customer"),
        db_index=False,
    )
    # The first day of the billed month.
    period = models.DateField(_("period"))
    kwh = models.PositiveIntegerField(_("kWh"))
    amount = models.BigIntegerField(_("amount (VND)"))
    due_date = models.DateField(_("due date"))
    issued_at = models.DateTimeField(_("issued at"), default=timezone.now)
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.UNPAID
    )
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    # The one payment that paid this bill: a bill can never be paid twice.
    paid_by = models.ForeignKey(
        "payments.Payment",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="paid_bills",
        verbose_name=_("paid by"),
        db_index=False,  # a partial index below: unpaid bills never enter it
    )

    class Meta:
        verbose_name = _("bill")
        verbose_name_plural = _("bills")
        ordering = ["-period"]
        constraints = [
            models.UniqueConstraint(fields=["number"], name="bill_number_unique"),
            models.UniqueConstraint(fields=["customer", "period"], name="bill_one_per_period"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="bill_amount_not_negative"),
            models.CheckConstraint(
                condition=(
                    Q(status="unpaid", paid_at__isnull=True, paid_by__isnull=True)
                    | Q(status="paid", paid_at__isnull=False, paid_by__isnull=False)
                ),
                name="bill_paid_fields_consistent",
            ),
        ]
        indexes = [
            # Reports count the bills of one month by area and status.
            models.Index(fields=["period", "status"], name="bill_period_status"),
            models.Index(
                fields=["paid_by"], condition=Q(paid_by__isnull=False), name="bill_paid_by"
            ),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_paid(self) -> bool:
        return self.status == self.Status.PAID

    def is_overdue(self, today: object = None) -> bool:
        today = today or timezone.localdate()
        return not self.is_paid and self.due_date < today  # type: ignore[operator]


class AuditEntry(models.Model):
    """What a staff member did, to what, when and why. Written by services, never edited."""

    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="audit_entries",
        verbose_name=_("staff member"),
    )
    action = models.CharField(_("action"), max_length=64)
    customer = models.ForeignKey(
        Customer,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_entries",
        verbose_name=_("customer"),
    )
    payment = models.ForeignKey(
        "payments.Payment",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_entries",
        verbose_name=_("payment"),
    )
    target = models.CharField(_("target"), max_length=200, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")
        ordering = ["-at"]
        # What the console's roles (groups agent, supervisor, finance; migration 0004) may do.
        permissions = [
            ("use_console", _("Can sign in to the staff console")),
            ("view_queues", _("Can see the work queues")),
            ("recheck_payment", _("Can ask the bank about a payment now")),
            ("resend_receipt", _("Can resend a payment receipt")),
            ("record_cash_payment", _("Can record a cash payment at the counter")),
            ("assign_transfer", _("Can match a bank transfer to a payment")),
            ("resolve_transfer", _("Can close a bank transfer settled outside the portal")),
            ("refund_payment", _("Can mark a payment refunded")),
            ("view_noncash_report", _("Can see the non-cash dashboard")),
            ("export_cash_customers", _("Can export the customers paying cash")),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"


class BillingFile(models.Model):
    """A billing file that loaded completely, by the digest of its bytes: when the same file comes
    again it is recognised at once instead of being read and checked row by row."""

    digest = models.CharField(_("SHA-256 of the file"), max_length=64, unique=True)
    name = models.CharField(_("file name"), max_length=255, blank=True)
    rows = models.PositiveIntegerField(_("rows"))
    loaded_at = models.DateTimeField(_("loaded at"), default=timezone.now)

    class Meta:
        verbose_name = _("billing file")
        verbose_name_plural = _("billing files")

    def __str__(self) -> str:
        return f"{self.name or self.digest[:12]} ({self.loaded_at:%Y-%m-%d %H:%M})"
