from django.contrib import admin

from common.admin import ReadOnlyAdmin
from customers.models import AuditEntry, Bill, Customer, ServiceArea


@admin.register(ServiceArea)
class ServiceAreaAdmin(admin.ModelAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "phone", "service_area", "is_active")
    list_filter = ("service_area", "is_active")
    # Folded text, so admins can search without accents and the trigram index serves it.
    search_fields = ("=code", "search_text")
    list_select_related = ("service_area",)
    readonly_fields = ("search_text", "created_at", "updated_at")
    show_full_result_count = False

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        obj.refresh_search_text()
        super().save_model(request, obj, form, change)


@admin.register(Bill)
class BillAdmin(admin.ModelAdmin):
    list_display = ("number", "customer", "period", "kwh", "amount", "due_date", "status")
    list_filter = ("status", "period")
    search_fields = ("=number", "=customer__code")
    raw_id_fields = ("customer", "paid_by")
    list_select_related = ("customer",)
    show_full_result_count = False
    # Payment state lives in payments.services; the admin never marks a bill paid by hand.
    readonly_fields = ("status", "paid_at", "paid_by")


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor", "action", "target", "customer")
    list_filter = ("action",)
    search_fields = ("=target", "=customer__code", "actor__username")
    raw_id_fields = ("customer", "payment")
