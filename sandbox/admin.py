"""The sandbox bank's own records in the admin, to follow a demo from the bank's side."""

from django.contrib import admin

from sandbox.models import BankTransaction, Notification, QueryRequest


@admin.register(BankTransaction)
class BankTransactionAdmin(admin.ModelAdmin):
    list_display = ("created_at", "txn_ref", "amount", "state", "response_code", "ipn_mode")
    list_filter = ("state", "ipn_mode")
    search_fields = ("=txn_ref", "=transaction_no")


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "state", "attempts", "last_status", "delivered_at")
    list_filter = ("kind", "state")


@admin.register(QueryRequest)
class QueryRequestAdmin(admin.ModelAdmin):
    list_display = ("received_at", "tmn_code", "request_id", "day")
