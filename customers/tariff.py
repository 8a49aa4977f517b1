"""The residential block tariff: six tiers of VND per kWh, then VAT.

Prices are EVN's retail residential tariff (Decision 1279/QĐ-BCT, from 10 May 2025); update
`RESIDENTIAL_TIERS` and `VAT_PERCENT` when the ministry changes them.
"""

from __future__ import annotations

# (upper bound of the tier in kWh, or None for "and above"; price in VND per kWh, before VAT)
RESIDENTIAL_TIERS: tuple[tuple[int | None, int], ...] = (
    (50, 1_984),
    (100, 2_050),
    (200, 2_380),
    (300, 2_998),
    (400, 3_350),
    (None, 3_460),
)
VAT_PERCENT = 8


def energy_charge(kwh: int, tiers: tuple[tuple[int | None, int], ...] = RESIDENTIAL_TIERS) -> int:
    """The charge before VAT: each kWh priced by the tier it falls in."""
    if kwh < 0:
        raise ValueError("consumption cannot be negative")
    total = 0
    lower = 0
    for upper, price in tiers:
        if upper is None or kwh <= upper:
            return total + (kwh - lower) * price
        total += (upper - lower) * price
        lower = upper
    return total


def bill_amount(kwh: int, vat_percent: int = VAT_PERCENT) -> int:
    """Whole VND, VAT included, rounded half up (integer arithmetic: money is never a float)."""
    charge = energy_charge(kwh)
    return (charge * (100 + vat_percent) + 50) // 100
