"""Load the utility's monthly billing file (docs/interfaces.md, "Billing data file").

Rules (`rules.py`): customers are created or updated by code; a bill is new by number; the same
bill again with the same values is skipped, with different values it is refused (bills are never
silently rewritten); `service_area` is a name or a code, created when new. Without `strict`, good
rows load and bad rows are reported with their line numbers; with `strict`, nothing loads unless
every row is good. A file that loaded completely is recognised by its digest when it comes again,
and nothing is read twice.

On PostgreSQL the rules run set-based over a staging table (`postgres.py`); elsewhere (SQLite, the
embedded default) row by row through the ORM (`orm.py`), with the same rules and messages.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from django.db import connection, transaction
from django.utils import timezone

from customers.billing_import import orm, postgres
from customers.billing_import.reading import ImportFileError, digest_of, records
from customers.billing_import.result import ImportResult
from customers.billing_import.rules import COLUMNS, RowError, validate_row
from customers.models import BillingFile
from customers.selectors import bills_cache_forget_all

__all__ = [
    "COLUMNS",
    "ImportFileError",
    "ImportResult",
    "RowError",
    "import_bills",
    "rows_to_csv",
    "validate_row",
]

Progress = Callable[[int], None]
_PROGRESS_EVERY = 5000


def import_bills(
    source: str | Path | IO[str],
    *,
    strict: bool = False,
    progress: Progress | None = None,
    set_based: bool | None = None,
    recheck: bool = False,
) -> ImportResult:
    """Validate and load a billing file. See the module docstring for the rules.

    `set_based` chooses the PostgreSQL loader (default: on PostgreSQL) or the ORM one; `recheck`
    reads a file again even when the same file loaded completely before. `progress` is called
    with the number of rows read since its last call; the PostgreSQL loader reads in a thread of
    its own, so it is called there, and must not use the database (that thread's connection is
    outside the import's transaction).
    """
    if isinstance(source, str | Path):
        with open(source, "rb") as raw:
            digest = digest_of(raw)
        with open(source, encoding="utf-8", newline="") as stream:
            return _import(stream, digest, Path(source).name, strict, progress, set_based, recheck)
    text = source.read()
    digest = digest_of(io.BytesIO(text.encode("utf-8", "surrogatepass")))
    return _import(io.StringIO(text), digest, "", strict, progress, set_based, recheck)


def _import(
    stream: IO[str],
    digest: str,
    name: str,
    strict: bool,
    progress: Progress | None,
    set_based: bool | None,
    recheck: bool,
) -> ImportResult:
    result = ImportResult(strict=strict)
    earlier = None if recheck else BillingFile.objects.filter(digest=digest).first()
    if earlier is not None:
        result.rows = result.bills_skipped = earlier.rows
        result.loaded_before = earlier.loaded_at
        return result
    if set_based is None:
        set_based = connection.vendor == "postgresql"
    loader = postgres.load if set_based else orm.load
    now = timezone.now()
    with transaction.atomic():
        loader(_counted(records(stream), result, progress), result, strict=strict, now=now)
        if strict and result.errors:
            transaction.set_rollback(True)
            result.load_nothing()
        elif not result.errors:
            # Only a file that loaded completely is remembered: one with bad lines is read again.
            BillingFile.objects.update_or_create(
                digest=digest, defaults={"name": name[:255], "rows": result.rows, "loaded_at": now}
            )
    result.errors.sort(key=lambda error: error.line)
    if result.loaded and (result.bills_created or result.customers_updated):
        transaction.on_commit(bills_cache_forget_all)
    return result


def _counted(
    items: Iterator[tuple[int, list[str]]], result: ImportResult, progress: Progress | None
) -> Iterator[tuple[int, list[str]]]:
    for item in items:
        result.rows += 1
        if progress and result.rows % _PROGRESS_EVERY == 0:
            progress(_PROGRESS_EVERY)
        yield item
    if progress:
        progress(result.rows % _PROGRESS_EVERY)


def rows_to_csv(rows: Iterable[Iterable[Any]]) -> str:
    """A billing file's text from rows of values (used by tests and the demo generator)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue()
