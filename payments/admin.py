"""Admin views of payments: to look, not to change. Changes go through payments.services
(the console's actions), so every one is checked, locked and recorded."""

from django.contrib import admin

from common.admin import ReadOnlyAdmin
from payments.models import (
    BankTransfer,
    CreditUse,
    IdempotencyKey,
    InboundMessage,
    Partner,
    Payment,
    PaymentBill,
    PaymentEvent,
    SettlementReport,
)


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "kind", "napas_bin", "enabled", "offers_redirect", "collects")
    list_filter = ("kind", "enabled", "offers_redirect", "collects")
    search_fields = ("code", "name")
    # Codes are referenced by the environment (PARTNER_<CODE>_SECRET): fixed once created.
    readonly_fields = ("code",)

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class PaymentBillInline(admin.TabularInline):
    model = PaymentBill
    extra = 0
    can_delete = False
    readonly_fields = ("bill", "amount", "applied")

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class PaymentEventInline(admin.TabularInline):
    model = PaymentEvent
    extra = 0
    can_delete = False
    readonly_fields = ("at", "from_status", "to_status", "source", "detail", "actor", "message")

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = (
        "reference",
        "customer",
        "amount",
        "method",
        "partner",
        "status",
        "needs_refund",
        "needs_review",
        "created_at",
    )
    list_filter = ("status", "method", "partner", "needs_refund", "needs_review")
    search_fields = ("=reference", "=customer__code", "=provider_txn_id")
    list_select_related = ("customer", "partner")
    show_full_result_count = False
    inlines = (PaymentBillInline, PaymentEventInline)


@admin.register(PaymentEvent)
class PaymentEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "payment", "from_status", "to_status", "source", "actor")
    list_filter = ("source", "to_status")
    search_fields = ("=payment__reference",)
    show_full_result_count = False


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    list_display = (
        "received_at",
        "kind",
        "partner",
        "signature_valid",
        "processed_at",
        "outcome",
        "attempts",
    )
    list_filter = ("kind", "partner", "outcome", "signature_valid")
    search_fields = ("=dedupe_key", "=payment__reference")
    show_full_result_count = False


@admin.register(BankTransfer)
class BankTransferAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "external_id", "amount", "status", "payment", "source")
    list_filter = ("status", "source")
    search_fields = ("=external_id", "content", "=payment__reference")
    show_full_result_count = False


@admin.register(CreditUse)
class CreditUseAdmin(ReadOnlyAdmin):
    list_display = ("at", "payment", "transfer", "source", "amount")
    search_fields = ("=payment__reference", "=transfer__external_id", "=source__reference")
    list_select_related = ("payment", "transfer", "source")


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "scope", "key", "response_status", "payment")
    search_fields = ("=key",)


@admin.register(SettlementReport)
class SettlementReportAdmin(ReadOnlyAdmin):
    list_display = (
        "business_date",
        "partner",
        "matched",
        "missing_ours",
        "missing_theirs",
        "amount_differences",
    )
    list_filter = ("partner",)
