"""What the customers app announces to the apps above it, which it never imports."""

from django.dispatch import Signal

# Sent by `import_bills` when a file created the bills of a new period: payments queues their
# reminders (payments/apps.py connects it).
new_bills_loaded = Signal()
