"""Partners' end-of-day settlement files compared with what the portal recorded.

A collecting partner sends, for each business day (GMT+7), a UTF-8 CSV with the header
`transaction_id,customer_code,bill_numbers,amount,paid_at` (bill numbers separated by `;`,
`paid_at` ISO 8601 or `YYYY-MM-DD HH:MM:SS`, GMT+7 when it has no offset). Each line is compared,
by transaction id, with the partner's collection payments whose `paid_at` falls on that day:

- matched: both sides have it, with the same amount, customer and bills;
- missing on our side: in the file, not a settled payment of that day here (never notified,
  refused, reversed, or recorded for another day: the details say which);
- missing on theirs: settled here, not in the file;
- differences: both sides have it but disagree on the amount (or, rarely, on the customer or the
  bills; the details name the field).

The outcome is a `SettlementReport` row plus a Markdown and a CSV file for the finance team. The
command `reconcile_partner` runs it for one file; the nightly task `reconcile_dropped_files` runs
it for every file partners dropped in `settings.RECONCILIATION_DROP_DIR`.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from common.localtime import GMT7
from customers.codes import InvalidCustomerCode, clean_customer_code
from payments import states
from payments.channels.collection.business_day import (
    business_date,
    business_day_bounds,
)
from payments.channels.collection.serializers import TRANSACTION_ID
from payments.models import Partner, Payment, PaymentBill, SettlementReport

logger = logging.getLogger(__name__)

FILE_COLUMNS = ("transaction_id", "customer_code", "bill_numbers", "amount", "paid_at")
# Settled on our side: the money moved and the partner kept it (a refund still moved money).
SETTLED = states.COLLECTED
_AMOUNT = re.compile(r"^[0-9]{1,15}$")
_DATE_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}")
# `<PARTNER>_<YYYYMMDD>.csv`, e.g. VCB_20261127.csv
DROPPED_NAME = re.compile(r"^(?P<partner>[A-Za-z0-9]+)_(?P<date>[0-9]{8})\.csv$", re.IGNORECASE)


class SettlementFileError(Exception):
    """The file as a whole cannot be read (encoding, header): no line is compared."""


@dataclass(frozen=True)
class SettlementLine:
    line: int
    transaction_id: str
    customer_code: str
    bill_numbers: tuple[str, ...]
    amount: int
    paid_at: datetime


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str
    transaction_id: str = ""


@dataclass
class ParsedFile:
    lines: list[SettlementLine] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    rows: int = 0


# --- Reading a file -----------------------------------------------------------------------------
def _parse_paid_at(value: str) -> datetime:
    if not _DATE_TIME.match(value):
        raise ValueError(value)  # a date alone would silently mean midnight
    moment = datetime.fromisoformat(value)
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=GMT7)
    return moment


def _parse_row(
    row: dict[str | None, Any], *, line: int, day: date, seen: dict[str, int]
) -> SettlementLine | BadRow:
    if row.get(None):
        return BadRow(line, _("more columns than the header"))
    if any(row.get(column) is None for column in FILE_COLUMNS):
        return BadRow(line, _("fewer columns than the header"))
    values = {column: str(row[column]).strip() for column in FILE_COLUMNS}
    transaction_id = values["transaction_id"]
    if not TRANSACTION_ID.fullmatch(transaction_id):
        return BadRow(line, _("transaction_id is missing or invalid"))
    if transaction_id in seen:
        return BadRow(
            line,
            _("transaction %(id)s is already on line %(line)s")
            % {"id": transaction_id, "line": seen[transaction_id]},
            transaction_id,
        )
    try:
        customer_code = clean_customer_code(values["customer_code"])
    except InvalidCustomerCode:
        return BadRow(line, _("customer_code is not a valid customer code"), transaction_id)
    bills = tuple(part.strip() for part in values["bill_numbers"].split(";") if part.strip())
    if not bills:
        return BadRow(line, _("bill_numbers is empty"), transaction_id)
    if len(set(bills)) != len(bills):
        return BadRow(line, _("a bill is listed more than once"), transaction_id)
    if not _AMOUNT.fullmatch(values["amount"]) or int(values["amount"]) <= 0:
        return BadRow(line, _("amount must be a whole number of VND above 0"), transaction_id)
    try:
        paid_at = _parse_paid_at(values["paid_at"])
    except ValueError:
        return BadRow(
            line, _("paid_at is not a date and time (YYYY-MM-DD HH:MM:SS)"), transaction_id
        )
    if business_date(paid_at) != day:
        return BadRow(
            line,
            _("paid_at is on %(paid)s, not on the file's business day %(day)s")
            % {"paid": business_date(paid_at).isoformat(), "day": day.isoformat()},
            transaction_id,
        )
    seen[transaction_id] = line
    return SettlementLine(
        line=line,
        transaction_id=transaction_id,
        customer_code=customer_code,
        bill_numbers=tuple(sorted(bills)),
        amount=int(values["amount"]),
        paid_at=paid_at,
    )


def settlement_file_parse(
    lines: Iterable[str], *, business_day: date, progress: Callable[[int], Any] | None = None
) -> ParsedFile:
    """Read a settlement file's text lines; every bad row is kept with its line number.

    Raises SettlementFileError when the header lacks a column or the text is not UTF-8.
    """
    reader = csv.DictReader(lines)
    parsed = ParsedFile()
    try:
        header = [name.strip().lower() for name in (reader.fieldnames or [])]
        missing = [column for column in FILE_COLUMNS if column not in header]
        if missing:
            raise SettlementFileError(
                _("the header lacks %(columns)s (expected %(expected)s)")
                % {"columns": ", ".join(missing), "expected": ",".join(FILE_COLUMNS)}
            )
        reader.fieldnames = header
        seen: dict[str, int] = {}
        for row in reader:
            parsed.rows += 1
            result = _parse_row(row, line=reader.line_num, day=business_day, seen=seen)
            if isinstance(result, BadRow):
                parsed.bad_rows.append(result)
            else:
                parsed.lines.append(result)
            if progress is not None:
                progress(1)
    except UnicodeDecodeError:
        raise SettlementFileError(
            _("the file is not UTF-8 text (near line %(line)s)") % {"line": reader.line_num + 1}
        ) from None
    except csv.Error as exc:
        raise SettlementFileError(
            _("the file is not valid CSV (line %(line)s): %(error)s")
            % {"line": reader.line_num, "error": exc}
        ) from None
    return parsed


def settlement_file_read(
    path: Path | str, *, business_day: date, progress: Callable[[int], Any] | None = None
) -> ParsedFile:
    # utf-8-sig: spreadsheets put a byte-order mark in front of the header.
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return settlement_file_parse(handle, business_day=business_day, progress=progress)


# --- Comparing ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Ours:
    transaction_id: str
    reference: str
    customer_code: str
    bill_numbers: tuple[str, ...]
    amount: int
    paid_at: datetime


def _ours_for_day(partner: Partner, day: date) -> dict[str, _Ours]:
    start, end = business_day_bounds(day)
    payments = list(
        Payment.objects.filter(
            partner=partner,
            method=Payment.Method.COLLECTION,
            status__in=SETTLED,
            succeeded_at__gte=start,
            succeeded_at__lt=end,
        )
        .exclude(provider_txn_id="")
        .values_list(
            "id", "provider_txn_id", "reference", "customer__code", "amount", "succeeded_at"
        )
    )
    bills: dict[Any, list[str]] = {}
    for payment_id, number in PaymentBill.objects.filter(
        payment_id__in=[row[0] for row in payments]
    ).values_list("payment_id", "bill__number"):
        bills.setdefault(payment_id, []).append(number)
    return {
        txn: _Ours(txn, reference, code, tuple(sorted(bills.get(pk, []))), amount, paid_at)
        for pk, txn, reference, code, amount, paid_at in payments
        if paid_at is not None  # always set: the query asks for a range of it
    }


def _why_missing_ours(partner: Partner, transaction_ids: list[str]) -> dict[str, str]:
    """For lines we have no settled payment of that day for: what we know of the transaction."""
    reasons: dict[str, str] = {}
    for txn, status, succeeded_at in Payment.objects.filter(
        partner=partner, provider_txn_id__in=transaction_ids
    ).values_list("provider_txn_id", "status", "succeeded_at"):
        if status == Payment.Status.REVERSED:
            reasons[txn] = _("reversed on our side")
        elif status in SETTLED and succeeded_at is not None:
            reasons[txn] = _("recorded on our side for %(day)s") % {
                "day": business_date(succeeded_at).isoformat()
            }
        else:
            reasons[txn] = _("%(status)s on our side") % {"status": status}
    return reasons


def _iso(moment: datetime) -> str:
    return moment.astimezone(GMT7).isoformat()


def settlement_reconcile(
    *, partner: Partner, business_day: date, parsed: ParsedFile, source_name: str
) -> SettlementReport:
    """Compare a parsed file with the portal's payments of that partner and day; save a report."""
    ours = _ours_for_day(partner, business_day)
    theirs = {line.transaction_id: line for line in parsed.lines}
    matched: list[str] = []
    differences: list[dict[str, Any]] = []
    for txn, line in theirs.items():
        mine = ours.get(txn)
        if mine is None:
            continue
        fields: dict[str, dict[str, Any]] = {}
        if mine.amount != line.amount:
            fields["amount"] = {"ours": mine.amount, "theirs": line.amount}
        if mine.customer_code != line.customer_code:
            fields["customer_code"] = {"ours": mine.customer_code, "theirs": line.customer_code}
        if mine.bill_numbers != line.bill_numbers:
            fields["bill_numbers"] = {
                "ours": list(mine.bill_numbers),
                "theirs": list(line.bill_numbers),
            }
        if fields:
            differences.append(
                {
                    "transaction_id": txn,
                    "line": line.line,
                    "receipt_number": mine.reference,
                    "fields": fields,
                }
            )
        else:
            matched.append(txn)
    absent = [txn for txn in theirs if txn not in ours]
    reasons = _why_missing_ours(partner, absent) if absent else {}
    missing_ours = [
        {
            "transaction_id": txn,
            "line": theirs[txn].line,
            "customer_code": theirs[txn].customer_code,
            "bill_numbers": list(theirs[txn].bill_numbers),
            "amount": theirs[txn].amount,
            "paid_at": _iso(theirs[txn].paid_at),
            "reason": reasons.get(txn, _("not recorded on our side")),
        }
        for txn in absent
    ]
    unreadable = {row.transaction_id: row.line for row in parsed.bad_rows if row.transaction_id}
    missing_theirs = []
    for txn, mine in sorted(ours.items(), key=lambda item: item[1].paid_at):
        if txn in theirs:
            continue
        entry = {
            "transaction_id": txn,
            "receipt_number": mine.reference,
            "customer_code": mine.customer_code,
            "bill_numbers": list(mine.bill_numbers),
            "amount": mine.amount,
            "paid_at": _iso(mine.paid_at),
            "reason": _("not in the partner's file"),
        }
        if txn in unreadable:
            entry["reason"] = _("their line %(line)s could not be read") % {"line": unreadable[txn]}
        missing_theirs.append(entry)
    details = {
        "rows": parsed.rows,
        "bad_rows": [
            {"line": row.line, "reason": row.reason, "transaction_id": row.transaction_id}
            for row in parsed.bad_rows
        ],
        "totals": {
            "ours": {"count": len(ours), "amount": sum(p.amount for p in ours.values())},
            "theirs": {"count": len(theirs), "amount": sum(t.amount for t in theirs.values())},
        },
        "matched": matched,
        "missing_ours": missing_ours,
        "missing_theirs": missing_theirs,
        "differences": differences,
    }
    report = SettlementReport.objects.create(
        partner=partner,
        business_date=business_day,
        source_name=source_name[:255],
        matched=len(matched),
        missing_ours=len(missing_ours),
        missing_theirs=len(missing_theirs),
        amount_differences=len(differences),
        details=details,
    )
    if not report.is_clean or parsed.bad_rows:
        logger.warning(
            "settlement %s %s: %d matched, %d missing ours, %d missing theirs, %d differences, "
            "%d bad rows",
            partner.code,
            business_day,
            report.matched,
            report.missing_ours,
            report.missing_theirs,
            report.amount_differences,
            len(parsed.bad_rows),
        )
    return report


def report_has_problems(report: SettlementReport) -> bool:
    """Differences of any kind, or lines of the file that could not be read."""
    return not report.is_clean or bool(report.details.get("bad_rows"))


# --- Writing the report -------------------------------------------------------------------------
def _money(amount: int) -> str:
    return f"{amount:,}".replace(",", ".") + " VND"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _row(*cells: Any) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def report_markdown(report: SettlementReport) -> str:
    """The report for people: a summary table, then every line that needs a look."""
    details = report.details
    totals = details.get("totals", {})
    ours, theirs = totals.get("ours", {}), totals.get("theirs", {})
    out = [
        "# "
        + _("Settlement reconciliation: %(partner)s, %(day)s")
        % {"partner": report.partner.code, "day": report.business_date.isoformat()},
        "",
        _("File: %(name)s (%(rows)s rows). Compared at %(at)s (GMT+7).")
        % {
            "name": report.source_name,
            "rows": details.get("rows", 0),
            "at": report.created_at.astimezone(GMT7).strftime("%Y-%m-%d %H:%M"),
        },
        "",
        _row(_("Result"), _("Count")),
        "| --- | ---: |",
        _row(_("Matched"), report.matched),
        _row(_("Missing on our side"), report.missing_ours),
        _row(_("Missing on theirs"), report.missing_theirs),
        _row(_("Amount differences"), report.amount_differences),
        _row(_("Unreadable rows"), len(details.get("bad_rows", []))),
        "",
        _("Our total: %(count)s payments, %(amount)s. Their total: %(tcount)s lines, %(tamount)s.")
        % {
            "count": ours.get("count", 0),
            "amount": _money(ours.get("amount", 0)),
            "tcount": theirs.get("count", 0),
            "tamount": _money(theirs.get("amount", 0)),
        },
        "",
    ]
    if not report_has_problems(report):
        out += [_("Everything matches."), ""]
        return "\n".join(out)
    if details.get("differences"):
        out += [
            "## " + _("Differences"),
            "",
            _row(_("Transaction"), _("Line"), _("Field"), _("Ours"), _("Theirs")),
            "| --- | ---: | --- | --- | --- |",
        ]
        for item in details["differences"]:
            for name, values in item["fields"].items():
                out.append(
                    _row(
                        item["transaction_id"], item["line"], name, values["ours"], values["theirs"]
                    )
                )
        out.append("")
    for key, title in (
        ("missing_ours", _("Missing on our side")),
        ("missing_theirs", _("Missing on theirs")),
    ):
        if details.get(key):
            out += [
                f"## {title}",
                "",
                _row(
                    _("Transaction"), _("Customer"), _("Bills"), _("Amount"), _("Paid at"), _("Why")
                ),
                "| --- | --- | --- | ---: | --- | --- |",
            ]
            out += [
                _row(
                    item["transaction_id"],
                    item["customer_code"],
                    "; ".join(item["bill_numbers"]),
                    _money(item["amount"]),
                    item["paid_at"],
                    item["reason"],
                )
                for item in details[key]
            ]
            out.append("")
    if details.get("bad_rows"):
        out += ["## " + _("Unreadable rows"), "", _row(_("Line"), _("Why")), "| ---: | --- |"]
        out += [_row(row["line"], row["reason"]) for row in details["bad_rows"]]
        out.append("")
    return "\n".join(out)


CSV_COLUMNS = (
    "result",
    "transaction_id",
    "line",
    "customer_code",
    "bill_numbers",
    "amount_ours",
    "amount_theirs",
    "paid_at",
    "reason",
)


def report_csv(report: SettlementReport) -> str:
    """One row per transaction and per unreadable line, for a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    details = report.details
    for txn in details.get("matched", []):
        writer.writerow(["matched", txn, "", "", "", "", "", "", ""])
    for item in details.get("differences", []):
        fields = item["fields"]
        amount = fields.get("amount", {})
        reason = "; ".join(
            f"{name}: {values['ours']} / {values['theirs']}" for name, values in fields.items()
        )
        writer.writerow(
            ["difference", item["transaction_id"], item["line"], "", "",
             amount.get("ours", ""), amount.get("theirs", ""), "", reason]
        )  # fmt: skip
    for item in details.get("missing_ours", []):
        writer.writerow(
            ["missing_ours", item["transaction_id"], item["line"], item["customer_code"],
             ";".join(item["bill_numbers"]), "", item["amount"], item["paid_at"], item["reason"]]
        )  # fmt: skip
    for item in details.get("missing_theirs", []):
        writer.writerow(
            ["missing_theirs", item["transaction_id"], "", item["customer_code"],
             ";".join(item["bill_numbers"]), item["amount"], "", item["paid_at"], item["reason"]]
        )  # fmt: skip
    for row in details.get("bad_rows", []):
        writer.writerow(
            ["bad_row", row.get("transaction_id", ""), row["line"], "", "", "", "", "",
             row["reason"]]
        )  # fmt: skip
    return buffer.getvalue()


def report_directory() -> Path:
    return Path(
        getattr(settings, "RECONCILIATION_REPORT_DIR", None)
        or Path(settings.VAR_DIR) / "reports" / "reconciliation"
    )


def report_write_files(report: SettlementReport, directory: Path | None = None) -> list[Path]:
    """`<PARTNER>_<YYYYMMDD>.md` and `.csv`; a later run for the same file replaces them."""
    directory = directory or report_directory()
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{report.partner.code}_{report.business_date:%Y%m%d}"
    markdown, table = directory / f"{stem}.md", directory / f"{stem}.csv"
    markdown.write_text(report_markdown(report), encoding="utf-8")
    table.write_text(report_csv(report), encoding="utf-8")
    return [markdown, table]


# --- One file, and the nightly sweep of dropped files -------------------------------------------
def reconcile_file(
    *,
    partner: Partner,
    business_day: date,
    path: Path,
    progress: Callable[[int], Any] | None = None,
    report_dir: Path | None = None,
) -> tuple[SettlementReport, list[Path]]:
    """Parse, compare, save and write the report of one settlement file.

    Raises SettlementFileError when the file cannot be read at all.
    """
    parsed = settlement_file_read(path, business_day=business_day, progress=progress)
    with transaction.atomic():
        report = settlement_reconcile(
            partner=partner, business_day=business_day, parsed=parsed, source_name=path.name
        )
    return report, report_write_files(report, report_dir)


def _move(path: Path, folder: Path, *, stamp: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{path.stem}.{stamp}{path.suffix}" if stamp else path.name
    target = folder / name
    shutil.move(str(path), str(target))
    return target


def _reject(path: Path, drop: Path, stamp: str, reason: str) -> None:
    logger.error("settlement file %s rejected: %s", path.name, reason)
    target = _move(path, drop / "rejected", stamp=stamp)
    target.with_name(target.name + ".error.txt").write_text(reason + "\n", encoding="utf-8")


def reconcile_dropped_files(*, now: datetime | None = None, settle_seconds: int = 60) -> int:
    """Reconcile every `<PARTNER>_<YYYYMMDD>.csv` in `settings.RECONCILIATION_DROP_DIR`.

    Returns how many files were reconciled. A file is first moved to `processing/` (an atomic
    rename: two workers never take the same file), then to `processed/` with its report written,
    or to `rejected/` with an `.error.txt` saying why (unknown partner, unreadable file). Files
    changed in the last `settle_seconds` are left for the next run: they may still be uploading.
    """
    drop = Path(settings.RECONCILIATION_DROP_DIR)
    if not drop.is_dir():
        return 0
    now = now or timezone.now()
    stamp = now.astimezone(GMT7).strftime("%Y%m%d%H%M%S")
    done = 0
    for path in sorted(drop.iterdir()):
        if not path.is_file() or path.suffix.lower() != ".csv":
            continue  # uploads in progress (.part, .tmp) and anything else stay where they are
        if now.timestamp() - path.stat().st_mtime < settle_seconds:
            continue
        processing = drop / "processing" / path.name
        processing.parent.mkdir(exist_ok=True)
        try:
            path.rename(processing)
        except FileNotFoundError:
            continue  # another worker took it
        with translation.override(settings.LANGUAGE_CODE):
            done += _reconcile_dropped(processing, drop=drop, stamp=stamp)
    return done


def _reconcile_dropped(path: Path, *, drop: Path, stamp: str) -> int:
    match = DROPPED_NAME.match(path.name)
    if match is None:
        _reject(path, drop, stamp, _("name the file <PARTNER>_<YYYYMMDD>.csv"))
        return 0
    partner = Partner.objects.filter(code=match["partner"].upper(), collects=True).first()
    if partner is None:
        _reject(
            path,
            drop,
            stamp,
            _("no collecting partner has the code %(code)s") % {"code": match["partner"]},
        )
        return 0
    digits = match["date"]
    try:
        day = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        _reject(path, drop, stamp, _("%(date)s is not a date") % {"date": digits})
        return 0
    try:
        report, files = reconcile_file(partner=partner, business_day=day, path=path)
    except SettlementFileError as exc:
        _reject(path, drop, stamp, str(exc))
        return 0
    except Exception:
        # A bug or a database outage: put the file back so the next run tries again.
        logger.exception("settlement file %s could not be reconciled", path.name)
        shutil.move(str(path), str(drop / path.name))
        return 0
    _move(path, drop / "processed", stamp=stamp)
    logger.info(
        "settlement %s %s reconciled: report %s, files %s",
        partner.code,
        day,
        report.pk,
        ", ".join(str(f) for f in files),
    )
    return 1
