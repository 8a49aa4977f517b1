"""The staff's permissions, by the names `User.has_perm` takes.

They are declared on `AuditEntry` (customers/models.py) and given to the role groups by migration
customers/0004; the console checks them on every page (console/permissions.py) and the payment
services check the one that lets a supervisor move large amounts of held money.
"""

USE_CONSOLE = "customers.use_console"
VIEW_CUSTOMER = "customers.view_customer"
VIEW_QUEUES = "customers.view_queues"
RECHECK_PAYMENT = "customers.recheck_payment"
RESEND_RECEIPT = "customers.resend_receipt"
RECORD_CASH = "customers.record_cash_payment"
ASSIGN_TRANSFER = "customers.assign_transfer"
RESOLVE_TRANSFER = "customers.resolve_transfer"
REFUND_PAYMENT = "customers.refund_payment"
VIEW_AUDIT = "customers.view_auditentry"
VIEW_REPORT = "customers.view_noncash_report"
EXPORT_CASH = "customers.export_cash_customers"

ROLES = ("agent", "supervisor", "finance")
