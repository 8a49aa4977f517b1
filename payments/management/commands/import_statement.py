"""python manage.py import_statement FILE.csv: match a bank statement's credits like webhooks.

Money that no notification announced (a lost webhook, a sender outage) is still found: every
line is stored in the inbox as kind `statement` under its transaction id, then applied by the
same matcher as notifications. A credit a notification already announced is the same
`BankTransfer` row and is not applied twice; importing the same file again changes nothing.

Lines are applied a batch at a time by the applier in this process as they arrive
(`applier.apply_arriving`), through the very channel that applies transfer notifications
(`matching.apply_credits`), and stored in the inbox already applied in the same transaction:
a 100,000-line statement takes seconds, not a Celery task per line, writes each inbox row once,
and follows the same rules and locks as one notification. Two batches are applied at once, on
two connections (`_Appliers`), so that the importer's Python and PostgreSQL work side by side.
"""

from __future__ import annotations

import csv
import json
import queue
import sys
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from tqdm import tqdm

from common.read_ahead import batched, read_ahead
from payments import applier, inbox, matching
from payments.bulk import AnyOf
from payments.channels.statements import lines
from payments.models import InboundMessage

OUTCOME_LABELS = {
    matching.MATCHED: "matched to a payment",
    matching.MATCHED_LATE: "matched to a payment after it expired or was cancelled",
    matching.DUPLICATE: "already recorded (announced by a notification or an earlier import)",
    matching.UNMATCHED: "no payment found: waiting for an agent",
    matching.WRONG_AMOUNT: "wrong amount: waiting for an agent",
    matching.NEEDS_REFUND: "payment already settled or cancelled: money to give back",
    matching.FOREIGN_ACCOUNT: "another account than the receiving account: waiting for an agent",
    matching.IGNORED: "debits, ignored",
    matching.REJECTED: "unreadable",
}


@dataclass(frozen=True)
class Line:
    """A checked line: its inbox dedupe key and body, the credit it reports, where it stands
    in the file, and the references its note names (payments' or bills')."""

    key: str
    body: str
    credit: matching.Credit
    number: int = 0
    values: tuple[str, ...] = ()
    references: frozenset[str] = frozenset()


@dataclass
class _Tally:
    """What applying a batch came to, for the report."""

    counts: Counter[str] = field(default_factory=Counter)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


class _Appliers:
    """Batches applied two at a time, each by a thread of its own on its own connection and in
    its own transaction: while one batch writes and commits, the next is looked up, decided and
    locked, so the importer's Python and PostgreSQL work side by side instead of taking turns.

    A batch naming a reference that the batch in flight names waits until that one committed:
    money kept short for a payment (`matching.apply_credits` combines it with a later credit)
    and a bill's payment opened by the earlier batch are seen only once committed. Batches that
    name different payments meet only on a bill both pay, whose row lock makes one wait for the
    other, as two notifications at once do.

    With no threads (inside a caller's transaction, which must hold everything, and on SQLite,
    which has one writer) each batch is applied on submission, on the caller's connection.
    """

    def __init__(
        self,
        apply: Callable[[list[Line]], _Tally],
        done: Callable[[_Tally], None],
        *,
        threads: int,
    ):
        self.apply, self.done = apply, done
        self.jobs: queue.SimpleQueue[tuple[list[Line], Future[_Tally]] | None] = queue.SimpleQueue()
        self.flying: deque[tuple[frozenset[str], Future[_Tally]]] = deque()
        self.threads = [
            threading.Thread(target=self._work, name=f"statement-applier-{n}", daemon=True)
            for n in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        try:
            while (job := self.jobs.get()) is not None:
                batch, result = job
                try:
                    result.set_result(self.apply(batch))
                except BaseException as exc:  # noqa: BLE001 - raised again in the main thread
                    result.set_exception(exc)
        finally:
            connection.close()

    def submit(self, batch: list[Line]) -> None:
        if not self.threads:
            self.done(self.apply(batch))
            return
        named = frozenset().union(*(line.references for line in batch))
        while self.flying and (len(self.flying) > 1 or self.flying[0][0] & named):
            self.done(self.flying.popleft()[1].result())
        result: Future[_Tally] = Future()
        self.jobs.put((batch, result))
        self.flying.append((named, result))

    def close(self) -> None:
        """Wait for the batches in flight (the first failure is raised), then end the threads."""
        try:
            while self.flying:
                self.done(self.flying.popleft()[1].result())
        finally:
            for _names, result in self.flying:
                result.exception()  # a batch that fails after another one did: nothing to add
            for _thread in self.threads:
                self.jobs.put(None)
            for thread in self.threads:
                thread.join()


class Command(BaseCommand):
    help = "Load a bank statement CSV and match its credits to payments, like transfer webhooks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="UTF-8 CSV: " + ",".join(lines.STATEMENT_COLUMNS))
        parser.add_argument(
            "--batch-size", type=int, default=5000, help="lines stored and decided together"
        )

    def handle(self, *args: Any, file: str, batch_size: int, **options: Any) -> None:
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file")
        self.rejected: list[tuple[int, str]] = []
        self.counts: Counter[str] = Counter()
        self.errors: list[tuple[int, str]] = []
        self.repeated = 0  # counted by the reading thread
        self.partner_id = matching.receiving_partner_id()
        started = timezone.now()
        try:
            self._read(path, batch_size)
        except UnicodeDecodeError as exc:
            raise CommandError(f"{file}: not UTF-8 text ({exc.reason}); nothing imported") from None
        elapsed = (timezone.now() - started).total_seconds()
        self._report(path.name, elapsed)
        if self.rejected or self.errors:
            problems = [f"{len(self.rejected)} line(s) rejected"] if self.rejected else []
            if self.errors:
                problems.append(f"{len(self.errors)} not applied yet (the inbox retries them)")
            raise CommandError(", ".join(problems) + ".", returncode=1)

    def _read(self, path: Path, batch_size: int) -> None:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            total = max(sum(1 for _ in handle) - 1, 0)
            handle.seek(0)
            bar = tqdm(
                total=total,
                unit="line",
                desc="Matching",
                file=sys.stderr,
                disable=not self.stderr.isatty(),
            )
            with bar, inbox.inbox_turn(InboundMessage.Kind.STATEMENT):
                own_transactions = (
                    connection.vendor == "postgresql"
                    and connection.get_autocommit()
                    and not connection.in_atomic_block
                )
                appliers = _Appliers(self._apply, self._add, threads=2 if own_transactions else 0)
                # Read and checked by a thread while the batch before is applied: reading is
                # Python work, applying mostly waits for PostgreSQL (which lets the reader run).
                # closing(): the reading thread stops however the loop ends.
                lines_read = read_ahead(batched(self._lines(handle, path.name), batch_size))
                try:
                    with closing(lines_read) as batches:
                        for batch in batches:
                            appliers.submit(batch)
                            bar.update(len(batch))
                finally:
                    appliers.close()

    # --- Reading ----------------------------------------------------------------------------
    def _lines(self, handle: Any, name: str) -> Iterator[Line]:
        reader = csv.reader(handle)
        try:
            header = [column.strip().lower() for column in next(reader, [])]
        except csv.Error as exc:
            raise CommandError(f"line 1: the header is not readable as CSV: {exc}") from None
        missing = [column for column in lines.STATEMENT_COLUMNS if column not in header]
        if missing:
            raise CommandError(
                "line 1: the header must name the columns "
                + ",".join(lines.STATEMENT_COLUMNS)
                + f" (missing: {', '.join(missing)})"
            )
        seen: dict[str, tuple[int, tuple[str, ...]]] = {}
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # e.g. a NUL byte, or a quote left open at the end
                self._reject(reader.line_num, f"not readable as CSV: {exc}")
                continue
            number = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # a blank line, often the last one
            if len(row) != len(header):
                self._reject(number, f"expected {len(header)} columns, found {len(row)}")
                continue
            fields = dict(zip(header, row, strict=True))
            try:
                credit = lines.credit_from_statement_row(fields)
            except matching.InvalidCredit as exc:
                self._reject(number, str(exc))
                continue
            key = lines.statement_dedupe_key(credit)
            values = tuple(fields[column] for column in lines.STATEMENT_COLUMNS)
            if key in seen:
                first, first_values = seen[key]
                if first_values != values:
                    self._reject(
                        number,
                        f"transaction {credit.external_id} is on line {first} with other values",
                    )
                else:
                    self.repeated += 1
                continue
            seen[key] = (number, values)
            body = lines.statement_body(fields, file=name, line=number)
            yield Line(key, body, credit, number, values, frozenset(credit.named))

    def _reject(self, number: int, reason: str) -> None:
        self.rejected.append((number, reason))

    # --- Storing and matching ---------------------------------------------------------------
    def _apply(self, batch: list[Line]) -> _Tally:
        # One transaction per batch, under the statements' turn (`inbox_turn`): lines seen for
        # the first time are applied and stored applied, each inbox row written once; a line
        # an earlier import stored is not applied twice.
        kind = InboundMessage.Kind.STATEMENT
        tally = _Tally()
        with transaction.atomic():
            stored = inbox.inbox_stored(keys=[line.key for line in batch])
            arriving = [line for line in batch if line.key not in stored]
            outcomes = applier.apply_arriving(
                kind=kind,
                messages=[inbox.Arriving(li.key, li.body, self.partner_id) for li in arriving],
                parsed=[line.credit for line in arriving],
            )
            unapplied = self._stored_before(
                [line for line in batch if line.key in stored], stored, tally
            )
            by_id = {stored[key].pk: key for key in unapplied}
            if by_id:
                applied = applier.apply(message_ids=list(by_id), batch=len(by_id))
                outcomes.update((by_id[pk], outcome) for pk, outcome in applied.items())
        elsewhere = [pk for pk, key in by_id.items() if key not in outcomes]
        if elsewhere:
            # Applied meanwhile by a worker's applier: its outcome is on the row.
            outcomes.update(
                (by_id[pk], InboundMessage.Outcome(outcome))
                for pk, outcome in InboundMessage.objects.filter(
                    AnyOf(F("pk"), elsewhere), processed_at__isnull=False
                ).values_list("pk", "outcome")
            )
        numbers = {line.key: line.number for line in batch}
        for key, outcome in outcomes.items():
            if outcome == InboundMessage.Outcome.ERROR:
                tally.errors.append((numbers[key], _error_of(key)))
            else:
                tally.counts[outcome] += 1
        return tally

    def _stored_before(
        self, lines: list[Line], stored: dict[str, inbox.Stored], tally: _Tally
    ) -> list[str]:
        """Lines an earlier import stored: refused when their values differ, counted when they
        were applied, and the keys of those it left unapplied."""
        unapplied = []
        for line in lines:
            earlier = stored[line.key]
            if earlier.body != line.body and _values(earlier.body) != line.values:
                tally.rejected.append(
                    (
                        line.number,
                        f"this transaction was imported before with other values "
                        f"({_origin(earlier.body)})",
                    )
                )
            elif earlier.processed:
                tally.counts["already imported"] += 1
            else:
                unapplied.append(line.key)
        return unapplied

    def _add(self, tally: _Tally) -> None:
        self.counts.update(tally.counts)
        self.rejected.extend(tally.rejected)
        self.errors.extend(tally.errors)

    # --- Reporting --------------------------------------------------------------------------
    def _report(self, name: str, elapsed: float) -> None:
        for number, reason in sorted(self.rejected):
            self.stderr.write(f"{name}: line {number}: {reason}")
        for number, reason in self.errors:
            self.stderr.write(
                f"{name}: line {number}: not applied now, the inbox will retry: {reason}"
            )
        applied = sum(
            self.counts[outcome] for outcome in OUTCOME_LABELS if outcome != matching.REJECTED
        )
        self.stdout.write(f"{name}: {applied} line(s) applied in {elapsed:.1f} s")
        for outcome, label in OUTCOME_LABELS.items():
            if self.counts[outcome]:
                self.stdout.write(f"  {self.counts[outcome]:>8}  {label}")
        if self.counts["already imported"]:
            self.stdout.write(f"  {self.counts['already imported']:>8}  already imported before")
        if self.repeated:
            self.stdout.write(f"  {self.repeated:>8}  repeated lines in this file")
        if self.rejected:
            self.stdout.write(f"  {len(self.rejected):>8}  rejected (see above)")


def _values(body: str) -> tuple[str, ...]:
    try:
        data = json.loads(body)
    except ValueError:
        return ()
    return tuple(str(data.get(column, "")) for column in lines.STATEMENT_COLUMNS)


def _origin(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return "unknown origin"
    return f"{data.get('file') or 'a file'}, line {data.get('line') or '?'}"


def _error_of(key: str) -> str:
    detail = (
        InboundMessage.objects.filter(dedupe_key=key)
        .values_list("outcome_detail", flat=True)
        .first()
    )
    return detail or "unknown error"
