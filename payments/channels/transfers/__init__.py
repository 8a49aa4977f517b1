"""Bank-transfer notifications (SePay shape): read, stored, and matched to payments."""
