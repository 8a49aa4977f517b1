"""What an import did, for the command's summary and the error report."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from customers.billing_import.rules import RowError


@dataclass
class ImportResult:
    rows: int = 0
    customers_created: int = 0
    customers_updated: int = 0
    bills_created: int = 0
    bills_skipped: int = 0
    areas_created: int = 0
    errors: list[RowError] = field(default_factory=list)
    strict: bool = False
    loaded: bool = True
    # Set when this very file (same digest) had already loaded completely: nothing was read again.
    loaded_before: datetime.datetime | None = None

    @property
    def rejected(self) -> int:
        return len(self.errors)

    def load_nothing(self) -> None:
        self.loaded = False
        self.customers_created = self.customers_updated = self.bills_created = 0
        self.areas_created = self.bills_skipped = 0
