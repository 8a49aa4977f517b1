"""The public pages of the households: lookup, paying, receipts, payment links."""
