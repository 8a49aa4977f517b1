"""Bank credits to payments: transfer notifications and statement lines, matched the same way.

Every credit becomes one `BankTransfer` row, unique on (account, the bank's own reference), so
the same money announced by a webhook, its retries and a statement is recorded once. Then:

- a debit (money leaving the account) is kept as IGNORED;
- a credit to an account that is not the utility's receiving account is kept for an agent;
- the note is folded (upper-case, no diacritics, no punctuation) and searched anywhere for a
  payment reference whose check character is right; none, or one that names no VietQR payment,
  leaves the transfer UNMATCHED;
- the payment must not already be settled (else NEEDS_REFUND: the money came twice), and the
  amount must be exact (else WRONG_AMOUNT, the payment untouched), or make it exact together
  with the credits kept as WRONG_AMOUNT for the same VietQR payment (money that arrived short);
- then `services.payments_mark_succeeded` settles it, pending, expired or cancelled alike: late
  money is still money.

Nothing is ever dropped: each outcome is a row an agent can find, with its reason.

There is one way to apply credits, `apply_credits`: the applier hands it a batch of stored
messages (a notification is a batch of one; a statement is thousands), it decides them in
message order with the rules above and settles the payments they name together. Locks are
taken in one order everywhere: inbox messages, transfers, payments, bills, each in id order.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from common.text import alnum_upper
from payments import notes, references, services, states
from payments.bulk import AnyOf, bulk_update_rows, insert_new, pg_array
from payments.inbox import Applied, Claimed
from payments.models import BankTransfer, CreditUse, InboundMessage, Partner, Payment

logger = logging.getLogger(__name__)


Status = BankTransfer.Status
TransferSource = BankTransfer.Source

# Outcomes written on the inbox message (`InboundMessage.outcome`).
Outcome = InboundMessage.Outcome
MATCHED = Outcome.MATCHED
MATCHED_LATE = Outcome.MATCHED_LATE
UNMATCHED = Outcome.UNMATCHED
WRONG_AMOUNT = Outcome.WRONG_AMOUNT
NEEDS_REFUND = Outcome.NEEDS_REFUND
FOREIGN_ACCOUNT = Outcome.FOREIGN_ACCOUNT
IGNORED = Outcome.IGNORED
DUPLICATE = Outcome.DUPLICATE
REJECTED = Outcome.REJECTED


class InvalidCredit(ValueError):
    """A notification or statement line that cannot be read; `fields` says what is wrong."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__(
            "; ".join(f"{name}: {' '.join(errors)}" for name, errors in fields.items())
        )
        self.fields = fields


@dataclass(frozen=True)
class Credit:
    """One movement on a bank account, as a notification or a statement line reports it."""

    source: str  # BankTransfer.Source
    external_id: str  # the bank's own reference of the movement
    account_number: str
    amount: int  # whole VND, always positive; `outgoing` tells the direction
    outgoing: bool
    content: str
    occurred_at: datetime

    @cached_property
    def named(self) -> list[str]:
        """The valid references its note names (`references.find_in` of the folded note): read
        once, though a statement's import asks before the line is decided."""
        return references.find_in(fold_note(self.content))


# --- Deciding ---------------------------------------------------------------------------------
class Decision(NamedTuple):
    """What to record for a credit when no payment is involved."""

    status: str
    outcome: Outcome
    reason: str


_NOT_ALNUM = re.compile(r"[^A-Z0-9]+")


def fold_note(content: str) -> str:
    """`common.text.alnum_upper`, with a shortcut for the plain-ASCII notes most banks send."""
    if content.isascii():
        return _NOT_ALNUM.sub("", content.upper())
    return alnum_upper(content)


def _same_account(a: str, b: str) -> bool:
    return a.strip().upper() == b.strip().upper()


def decide_without_payment(credit: Credit, *, account: str | None = None) -> Decision | list[str]:
    """The decisions that need no payment; otherwise the valid references found in the note.

    `account` is the receiving account (settings.VIETQR_ACCOUNT unless given).
    """
    if credit.outgoing:
        return Decision(Status.IGNORED, IGNORED, notes.OUTGOING.say())
    receiving = settings.VIETQR_ACCOUNT if account is None else account
    if not _same_account(credit.account_number, receiving):
        return Decision(
            Status.UNMATCHED,
            FOREIGN_ACCOUNT,
            notes.FOREIGN_ACCOUNT.say(account=credit.account_number, receiving=receiving),
        )
    found = credit.named
    if not found:
        return Decision(Status.UNMATCHED, UNMATCHED, notes.NO_REFERENCE.say())
    return found


def _no_such_payment(found: list[str]) -> Decision:
    return Decision(
        Status.UNMATCHED, UNMATCHED, notes.NO_SUCH_PAYMENT.say(references=", ".join(found))
    )


def _choose(credit: Credit, found: list[str], payments: Iterable[Payment]) -> Payment | Decision:
    """The payment a note names; a note naming several is left to an agent unless the amount
    tells them apart."""
    candidates = [p for p in payments if p.method == Payment.Method.VIETQR]
    if not candidates:
        return _no_such_payment(found)
    if len(candidates) > 1:
        exact = [p for p in candidates if p.amount == credit.amount]
        open_ = [p for p in exact if p.status not in states.SETTLED]
        chosen = open_ if len(open_) == 1 else exact
        if len(chosen) != 1:
            return Decision(
                Status.UNMATCHED,
                UNMATCHED,
                notes.SEVERAL_PAYMENTS.say(
                    references=", ".join(sorted(p.reference for p in candidates))
                ),
            )
        return chosen[0]
    return candidates[0]


def receiving_partner_id() -> int | None:
    """The partner whose account receives VietQR transfers (the utility's bank)."""
    partner = Partner.objects.receiving_bank()
    return partner.pk if partner else None


# --- Applying stored messages (the transfers channel of the applier) ---------------------------
def _duplicate_detail(pk: int, status: str, source: str) -> str:
    return notes.ALREADY_RECORDED.say(pk=pk, transfer_status=status, source=source)


def _report(transfer_id: int, credit: Credit, message: Claimed) -> services.Report:
    source = (
        services.Source.STATEMENT
        if credit.source == TransferSource.STATEMENT
        else services.Source.TRANSFER
    )
    return services.Report(
        source=source,
        message=message,
        detail={"transfer": credit.external_id, "bank_transfer_id": transfer_id},
    )


def _settled_twice(reference: str, credit: Credit, status: str) -> Decision:
    return Decision(
        Status.NEEDS_REFUND,
        NEEDS_REFUND,
        notes.SETTLED_TWICE.say(reference=reference, status=status, amount=credit.amount),
    )


def _wrong_amount(reference: str, expected: int, credit: Credit) -> Decision:
    return Decision(
        Status.WRONG_AMOUNT,
        WRONG_AMOUNT,
        notes.WRONG_AMOUNT.say(reference=reference, expected=expected, amount=credit.amount),
    )


def _applied(reference: str, previous: str, outcome: services.Outcome) -> Decision:
    """The decision once `payment_mark_succeeded` said `outcome` of a `previous` payment."""
    if outcome == services.Outcome.FLAGGED:
        # Cancelled or failed before the money came: recorded on the payment for review.
        return Decision(
            Status.NEEDS_REFUND,
            NEEDS_REFUND,
            notes.ARRIVED_AFTER.say(reference=reference, previous=previous),
        )
    late = previous in (Payment.Status.EXPIRED, Payment.Status.CANCELLED)
    if late:
        reason = notes.MATCHED_LATE.say(reference=reference, previous=previous)
    else:
        reason = notes.MATCHED.say(reference=reference)
    if outcome == services.Outcome.NEEDS_REFUND:
        reason += " " + notes.SOME_PAID_ALREADY.say()
    return Decision(Status.MATCHED, MATCHED_LATE if late else MATCHED, reason)


@dataclass(slots=True)
class _Transfer:
    """The columns of a locked BankTransfer row that deciding reads and writes."""

    pk: int
    message_id: int | None
    status: str
    source: str
    payment_id: Any
    reason: str = ""
    changed: bool = False  # decided after its row was written: written again with the batch
    amount: int = 0  # known for credits kept short (`wrong_amount`): what they brought
    external_id: str = ""


@dataclass(frozen=True, slots=True)
class _Line:
    """A line whose note names payments, with its message and transfer locked."""

    message: Claimed
    credit: Credit
    transfer: _Transfer
    found: list[str]

    @property
    def message_id(self) -> int:
        return self.message.pk


def apply_credits(
    messages: Sequence[Claimed],
    *,
    read: Callable[[str], Credit],
    parsed: Mapping[int, Credit] | None = None,
) -> dict[int, Applied]:
    """Decide and apply bank credits (stored notifications or statement lines, claimed and
    locked) in message order; returns what each came to.

    Each body is read by its channel's `read`, unless `parsed` has its credit already (a
    statement import reads each line once).
    """
    parsed = parsed or {}
    by_pk = {message.pk: message for message in messages}
    results: dict[int, Applied] = {}
    readable: list[tuple[int, int | None, Credit]] = []  # (message, partner, credit)
    claimed: dict[tuple[str, str], int] = {}
    for message in messages:
        credit = parsed.get(message.pk)
        if credit is None:
            try:
                credit = read(message.body)
            except InvalidCredit as exc:
                # Checked before storing, so only a stored row edited by hand gets here: keep it.
                results[message.pk] = Applied(REJECTED, f"Unreadable: {exc}")
                continue
        key = (credit.account_number, credit.external_id)
        first = claimed.setdefault(key, message.pk)
        if first != message.pk:
            # The same credit twice in one batch: the first one is the transfer.
            results[message.pk] = Applied(DUPLICATE, notes.SAME_CREDIT.say(message=first))
            continue
        readable.append((message.pk, message.partner_id, credit))
    # Most lines of a statement need no payment (other people's credits, debits): decided
    # before their transfer is written, they are written once, already decided.
    decisions = {message_id: decide_without_payment(credit) for message_id, _p, credit in readable}
    transfers = _lock_transfer_rows(readable, decisions)
    named: list[_Line] = []
    for message_id, _partner, credit in readable:
        transfer = transfers[(credit.account_number, credit.external_id)]
        if transfer.message_id != message_id and transfer.status != Status.RECEIVED:
            detail = _duplicate_detail(transfer.pk, transfer.status, transfer.source)
            results[message_id] = Applied(DUPLICATE, detail, transfer.payment_id)
            continue
        decided = decisions[message_id]
        if isinstance(decided, Decision):
            if transfer.status == Status.RECEIVED:  # a row an earlier attempt left undecided
                _decide(transfer, decided, None)
            results[message_id] = Applied(decided.outcome, decided.reason)
            continue
        named.append(_Line(by_pk[message_id], credit, transfer, decided))
    combined: list[_Transfer] = []
    if named:
        combined = _settle_named(named, results)
    bulk_update_rows(
        BankTransfer,
        ("status", "reason", "payment"),
        [
            (transfer.pk, transfer.status, transfer.reason, transfer.payment_id)
            # A credit kept short in this very batch may be made whole by a later line of it.
            for transfer in {t.pk: t for t in [*transfers.values(), *combined]}.values()
            if transfer.changed
        ],
    )
    return results


_TRANSFER_FIELDS = (
    "partner_id",
    "source",
    "external_id",
    "account_number",
    "amount",
    "content",
    "occurred_at",
    "received_at",
    "message_id",
    "status",
    "reason",
)


def _lock_transfer_rows(
    readable: list[tuple[int, int | None, Credit]],
    decisions: Mapping[int, Decision | list[str]],
) -> dict[tuple[str, str], _Transfer]:
    """The transfer row of each credit, locked: insert the new rows (ours, and locked, until we
    commit), each with its decision when it needs no payment, then lock the rows that were
    there already, in id order."""
    if not readable:
        return {}
    receiving: int | None = None
    if any(partner_id is None for _message, partner_id, _credit in readable):
        receiving = receiving_partner_id()
    now = timezone.now()
    undecided = Decision(Status.RECEIVED, UNMATCHED, "")
    rows = []
    written: dict[int, tuple[Credit, Decision]] = {}
    for message_id, partner_id, credit in readable:
        decided = decisions[message_id]
        decision = decided if isinstance(decided, Decision) else undecided
        written[message_id] = (credit, decision)
        rows.append(
            (
                partner_id or receiving,
                credit.source,
                credit.external_id,
                credit.account_number,
                credit.amount,
                credit.content,
                credit.occurred_at,
                now,
                message_id,
                decision.status,
                decision.reason,
            )
        )
    inserted = insert_new(
        BankTransfer,
        _TRANSFER_FIELDS,
        rows,
        conflict=("account_number", "external_id"),
        # Only what the database chose: the rest is what was written.
        returning=("id", "message_id"),
    )
    transfers = {}
    for pk, message_id in inserted:
        credit, decision = written[message_id]
        transfers[(credit.account_number, credit.external_id)] = _Transfer(
            pk, message_id, decision.status, "", None, decision.reason
        )
    already = [
        (credit.account_number, credit.external_id)
        for _message, _partner, credit in readable
        if (credit.account_number, credit.external_id) not in transfers
    ]
    for account, external, pk, message_id, status, source, payment_id in _transfers_by_key(
        already, lock=True
    ):
        transfers[(account, external)] = _Transfer(pk, message_id, status, source, payment_id)
    return transfers


def _transfers_by_key(keys: list[tuple[str, str]], *, lock: bool) -> list[tuple[Any, ...]]:
    """(account, bank reference, id, message, status, source, payment) of the transfers with
    these keys, in id order; locked when `lock`."""
    if not keys:
        return []
    columns = ("account_number", "external_id", "id", "message_id", "status", "source")
    if connection.vendor != "postgresql":
        wanted = set(keys)
        queryset = BankTransfer.objects.filter(
            account_number__in={account for account, _ in keys},
            external_id__in={external for _, external in keys},
        ).order_by("pk")
        if lock:
            queryset = queryset.select_for_update()
        return [
            row
            for row in queryset.values_list(*columns, "payment_id")
            if (row[0], row[1]) in wanted
        ]
    # One probe of the unique index per pair, whatever the planner thinks of the table (a
    # statement's own rows are not in its statistics yet): OFFSET 0 keeps the lateral subquery
    # from being turned into a join it might hash.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.account_number, t.external_id, t.id, t.message_id, t.status, t.source, "
            "t.payment_id FROM unnest(%s::text[], %s::text[]) AS k(account, external) "
            "CROSS JOIN LATERAL (SELECT * FROM payments_banktransfer AS b "
            "WHERE b.account_number = k.account AND b.external_id = k.external OFFSET 0) AS t",
            [
                pg_array(account for account, _ in keys),
                pg_array(external for _, external in keys),
            ],
        )
        found = cursor.fetchall()
        if not lock or not found:
            return sorted(found, key=lambda row: row[2])
        cursor.execute(
            "SELECT account_number, external_id, id, message_id, status, source, payment_id "
            "FROM payments_banktransfer WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE",
            [pg_array(row[2] for row in found)],
        )
        return cursor.fetchall()


def _decide(transfer: _Transfer, decision: Decision, payment: Payment | None) -> None:
    # Written later with the others.
    transfer.status, transfer.reason = decision.status, decision.reason
    transfer.payment_id = payment.pk if payment is not None else None
    transfer.changed = True


def _held_short(references: list[str]) -> dict[Any, list[_Transfer]]:
    """The credits kept as `wrong_amount` for the VietQR payments these references name, by
    payment, locked (transfers before payments, in id order): money that arrived short, which a
    later credit may make whole."""
    rows = list(
        BankTransfer.objects.select_for_update(of=("self",))
        .filter(
            AnyOf(F("payment__reference"), references),
            status=Status.WRONG_AMOUNT,
            payment__method=Payment.Method.VIETQR,
        )
        .order_by("pk")
        .values_list("pk", "message_id", "status", "source", "payment_id", "amount", "external_id")
    )
    # A credit an agent applied in part to bills no longer holds its amount. Read after the
    # lock, in a statement of its own: the locking query's snapshot predates a use committed
    # while it waited for the lock, and would count that money a second time.
    used = set(
        CreditUse.objects.filter(transfer_id__in=[row[0] for row in rows]).values_list(
            "transfer_id", flat=True
        )
    )
    held: dict[Any, list[_Transfer]] = {}
    for pk, message_id, status, source, payment_id, amount, external_id in rows:
        if pk in used:
            continue
        transfer = _Transfer(pk, message_id, status, source, payment_id)
        transfer.amount, transfer.external_id = amount, external_id
        held.setdefault(payment_id, []).append(transfer)
    return held


def _combined(reference: str, line: _Line, held: list[_Transfer]) -> tuple[Decision, Decision]:
    """The decisions when this credit makes whole what arrived short: (this line, the earlier)."""
    earlier = ", ".join(transfer.external_id for transfer in held)
    return (
        Decision(
            Status.MATCHED, MATCHED, notes.MADE_WHOLE.say(reference=reference, earlier=earlier)
        ),
        Decision(
            Status.MATCHED,
            MATCHED,
            notes.MADE_WHOLE_EARLIER.say(reference=reference, transfer=line.credit.external_id),
        ),
    )


def _single_references(named: list[_Line]) -> list[str]:
    """The reference of each note that names one, for a paper bill's standing payment: a note
    naming several goes to an agent, and must not leave payments open behind it.

    A valid reference also appears by chance where the payer's or the bank's text meets the
    real one (the check character lets one in 32 through: "HD-" typed before a bill's own
    reference, say). One that names neither a payment nor a bill is not a second reference."""
    single = [line.found[0] for line in named if len(line.found) == 1]
    several = {reference for line in named if len(line.found) > 1 for reference in line.found}
    if not several:
        return single
    real = services.references_naming_something(several)
    for line in named:
        kept = [reference for reference in line.found if reference in real]
        if len(line.found) > 1 and len(kept) == 1:
            single.append(kept[0])
    return single


def _settle_named(named: list[_Line], results: dict[int, Applied]) -> list[_Transfer]:
    """Choose each line's payment and settle them through `services.payments_mark_succeeded`;
    returns the earlier transfers a line made whole (changed, to be written with the batch).

    Settlements go in line order, so a payment two lines pay is settled by the first and the
    second brings money to give back, as one by one. Only which payment a note naming several
    goes to depends on what earlier lines did to them: such a line waits until the lines
    before it are settled. So does a line of another amount than its payment's: the credits of
    a payment kept as `wrong_amount` (earlier, or in this batch) and this one settle it when
    together they bring its exact amount.
    """
    references = sorted({reference for line in named for reference in line.found})
    # Locked here, in id order: transfers, then payments, then (by the service) bills.
    held = _held_short(references)
    services.bill_payments_open(found=_single_references(named))
    locked = services.payments_lock(AnyOf(F("reference"), references))
    position = {payment.pk: index for index, payment in enumerate(locked)}
    by_reference = {payment.reference: payment.pk for payment in locked}
    current = {payment.pk: payment for payment in locked}
    pending: list[tuple[_Line, Payment, list[_Transfer]]] = []
    made_whole: list[_Transfer] = []

    def settle() -> None:
        settled = services.payments_mark_succeeded(
            settlements=[
                services.Settlement(
                    payment_id=payment.pk,
                    report=_report(line.transfer.pk, line.credit, line.message),
                    amount=line.credit.amount + sum(t.amount for t in earlier),
                    at=line.credit.occurred_at,
                )
                for line, payment, earlier in pending
            ],
            locked=current,
        )
        for (line, payment, earlier), result in zip(pending, settled, strict=True):
            if result.previous in states.SETTLED:
                decision = _settled_twice(payment.reference, line.credit, result.previous)
            elif result.outcome is None:
                decision = _wrong_amount(payment.reference, payment.amount, line.credit)
                line.transfer.amount = line.credit.amount
                line.transfer.external_id = line.credit.external_id
                held.setdefault(payment.pk, []).append(line.transfer)
            elif earlier:
                decision, before = _combined(payment.reference, line, earlier)
                for transfer in earlier:
                    _decide(transfer, before, payment)
                    made_whole.append(transfer)
                held.pop(payment.pk, None)
            else:
                decision = _applied(payment.reference, result.previous, result.outcome)
            _decide(line.transfer, decision, payment)
            results[line.message_id] = Applied(decision.outcome, decision.reason, payment.pk)
        pending.clear()

    for line in named:
        # The payments the note names, in id order, as the handler's locking query lists them.
        pks = sorted(
            {by_reference[r] for r in line.found if r in by_reference}, key=position.__getitem__
        )
        candidates = [current[pk] for pk in pks]
        vietqr = {p.pk for p in candidates if p.method == Payment.Method.VIETQR}
        if len(vietqr) > 1 and vietqr & {payment.pk for _line, payment, _e in pending}:
            settle()
        chosen = _choose(line.credit, line.found, candidates)
        if isinstance(chosen, Decision):
            _decide(line.transfer, chosen, None)
            results[line.message_id] = Applied(chosen.outcome, chosen.reason)
            continue
        earlier: list[_Transfer] = []
        if line.credit.amount != chosen.amount and chosen.method == Payment.Method.VIETQR:
            if any(payment.pk == chosen.pk for _line, payment, _e in pending):
                settle()  # what the lines before this one brought decides what it completes
            short = held.get(chosen.pk, [])
            if short and sum(t.amount for t in short) + line.credit.amount == chosen.amount:
                earlier = list(short)
        pending.append((line, chosen, earlier))
    if pending:
        settle()
    return made_whole
