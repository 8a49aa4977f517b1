"""Service areas named by a billing file, by name or by code, created when new."""

from __future__ import annotations

from collections.abc import Iterable

from common.text import alnum_upper
from customers.billing_import.result import ImportResult
from customers.models import ServiceArea


def known_areas() -> dict[str, int]:
    """Existing service areas by code and by name, case-folded."""
    known: dict[str, int] = {}
    for area in ServiceArea.objects.all():
        known[area.code.casefold()] = area.pk
        known[area.name.casefold()] = area.pk
    return known


def area_ids(values: Iterable[str], result: ImportResult) -> dict[str, int]:
    """The service area of each value as the file spells it; unknown ones are created."""
    known = known_areas()
    found = {}
    for value in values:
        if value.casefold() not in known:
            known[value.casefold()] = _create(value, known)
            result.areas_created += 1
        found[value] = known[value.casefold()]
    return found


def _create(value: str, known: dict[str, int]) -> int:
    base = alnum_upper(value)[:14] or "AREA"
    code, suffix = base, 1
    while code.casefold() in known:
        suffix += 1
        code = f"{base[:12]}{suffix:02d}"
    area = ServiceArea.objects.create(code=code, name=value)
    known[code.casefold()] = area.pk
    return area.pk
