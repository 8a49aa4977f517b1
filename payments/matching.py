"""Bank credits to payments: transfer notifications and statement lines, matched the same way.

Every credit becomes one `BankTransfer` row, unique on (account, the bank's own reference), so
the same money announced by a webhook, its retries and a statement is recorded once. Then:

- a debit (money leaving the account) is kept as IGNORED;
- a credit to an account that is not the utility's receiving account is kept for an agent;
- the note is folded (upper-case, no diacritics, no punctuation) and searched anywhere for a
  payment reference whose check character is right; none, or one that names no VietQR payment,
  leaves the transfer UNMATCHED;
- the payment must not already be settled (else NEEDS_REFUND: the money came twice), and the
  amount must be exact (else WRONG_AMOUNT, the payment untouched);
- then `services.payment_mark_succeeded` settles it, pending or expired alike: late money is
  still money.

Nothing is ever dropped: each outcome is a row an agent can find, with its reason.

Locks are taken in one order everywhere: inbox message, transfer, payment, bills.

Notifications come one at a time through the inbox (`handle_transfer_message`). A statement
comes a hundred thousand lines at once (`statement_lines_apply`): its lines are decided a batch
at a time with the same rules, and the payments they name are settled together by
`services.payments_mark_succeeded`, which has the effects of `payment_mark_succeeded` called
line after line. The locks are the handler's, taken in the same order, so notifications
arriving meanwhile are applied exactly once either way. `statement_apply_each`, the handler
line by line, remains for a batch that fails.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Field, Model
from django.utils import timezone

from payments import inbox, references, services
from payments.models import BankTransfer, InboundMessage, Partner, Payment
from portal.text import alnum_upper

logger = logging.getLogger(__name__)

BANK_TIME_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")  # notifications and statements speak GMT+7
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_CONTENT = 1000
MAX_EXTERNAL_ID = 100  # BankTransfer.external_id
MAX_ACCOUNT = 32  # BankTransfer.account_number
MAX_AMOUNT = 10**13 - 1  # 13 digits, VietQR's own limit

Status = BankTransfer.Status
TransferSource = BankTransfer.Source

# Outcomes written on the inbox message (`InboundMessage.outcome`).
MATCHED = "matched"
MATCHED_LATE = "matched_late"
UNMATCHED = "unmatched"
WRONG_AMOUNT = "wrong_amount"
NEEDS_REFUND = "needs_refund"
FOREIGN_ACCOUNT = "foreign_account"
IGNORED = "ignored"
DUPLICATE = "duplicate"
REJECTED = "rejected"


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

    def transfer_fields(self) -> dict[str, Any]:
        """The `BankTransfer` fields this credit fills."""
        return {
            "source": self.source,
            "external_id": self.external_id,
            "account_number": self.account_number,
            "amount": self.amount,
            "content": self.content,
            "occurred_at": self.occurred_at,
        }


# --- Reading notifications and statement lines ------------------------------------------------
_BANK_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")


def parse_bank_time(value: Any) -> datetime:
    """'YYYY-MM-DD HH:MM:SS' in GMT+7, as banks write it, to an aware datetime."""
    # A regex rather than strptime: a statement has a hundred thousand of these.
    match = _BANK_TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError("must look like 2024-05-21 14:02:37 (GMT+7)")
    try:
        year, month, day, hour, minute, second = map(int, match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=BANK_TIME_ZONE)
    except ValueError:
        raise ValueError("is not a real date and time") from None


def _whole_number(value: Any) -> int:
    # JSON has one number type: 2277000 and 2277000.0 are the same amount; 12.5 is not dong.
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise ValueError("must be a whole number")
    return value


def _text(data: Mapping[str, Any], name: str, *, limit: int, required: bool) -> str:
    value = data.get(name)
    if value is None:
        if required:
            raise ValueError("is required")
        return ""
    if not isinstance(value, str):
        raise ValueError("must be text")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")  # PostgreSQL text cannot hold them
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape: no database can store it
        raise ValueError("must be valid Unicode text") from None
    value = value.strip()
    if required and not value:
        raise ValueError("must not be empty")
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters")
    return value


def _account(value: str) -> str:
    if not value.isascii() or not value.isalnum():
        raise ValueError("must be letters and digits only")
    return value


def credit_from_notification(data: Any) -> tuple[str, Credit]:
    """Check a SePay-shaped notification (PROTOCOLS.md §3); returns (sender id, credit).

    Raises InvalidCredit naming every bad field, so the sender is told all at once.
    """
    if not isinstance(data, dict):
        raise InvalidCredit({"body": ["must be a JSON object"]})
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}

    def check(name: str, read: Any) -> None:
        try:
            values[name] = read()
        except ValueError as exc:
            errors[name] = [str(exc)]

    def read_id() -> str:
        number = _whole_number(data.get("id"))
        if not 0 < number < 2**63:
            raise ValueError("must be a positive 64-bit number")
        return str(number)

    def read_amount() -> int:
        amount = _whole_number(data.get("transferAmount"))
        if not 0 < amount <= MAX_AMOUNT:
            raise ValueError("must be a positive whole number of VND")
        return amount

    def read_type() -> str:
        value = data.get("transferType")
        if value not in ("in", "out"):
            raise ValueError('must be "in" or "out"')
        return str(value)

    check("id", read_id)
    check("transactionDate", lambda: parse_bank_time(data.get("transactionDate")))
    check(
        "accountNumber",
        lambda: _account(_text(data, "accountNumber", limit=MAX_ACCOUNT, required=True)),
    )
    check("transferType", read_type)
    check("transferAmount", read_amount)
    check("content", lambda: _text(data, "content", limit=MAX_CONTENT, required=False))
    check("referenceCode", lambda: _text(data, "referenceCode", limit=80, required=False))
    for optional in ("gateway", "code", "subAccount", "description"):
        check(optional, lambda name=optional: _text(data, name, limit=MAX_CONTENT, required=False))
    if "accumulated" in data and data["accumulated"] is not None:
        check("accumulated", lambda: _whole_number(data["accumulated"]))
    if errors:
        raise InvalidCredit(errors)
    sender_id = values["id"]
    return sender_id, Credit(
        source=TransferSource.WEBHOOK,
        # The bank's reference makes a statement line of the same credit the same row; without
        # one, the sender's id is all there is.
        external_id=values["referenceCode"] or f"sepay:{sender_id}",
        account_number=values["accountNumber"],
        amount=values["transferAmount"],
        outgoing=values["transferType"] == "out",
        content=values["content"],
        occurred_at=values["transactionDate"],
    )


STATEMENT_COLUMNS = ("transaction_id", "account_number", "transaction_date", "amount", "content")


def credit_from_statement_row(row: Mapping[str, Any]) -> Credit:
    """Check one statement line (CONTRACT.md); a negative amount is a debit.

    Raises InvalidCredit naming every bad column.
    """
    errors: dict[str, list[str]] = {}
    external_id = account = content = ""
    occurred_at: datetime | None = None
    amount = 0
    # Plain sequential checks: a statement has a hundred thousand lines.
    try:
        external_id = _text(row, "transaction_id", limit=MAX_EXTERNAL_ID, required=True)
    except ValueError as exc:
        errors["transaction_id"] = [str(exc)]
    try:
        account = _account(_text(row, "account_number", limit=MAX_ACCOUNT, required=True))
    except ValueError as exc:
        errors["account_number"] = [str(exc)]
    try:
        occurred_at = parse_bank_time(row.get("transaction_date"))
    except ValueError as exc:
        errors["transaction_date"] = [str(exc)]
    try:
        amount = _statement_amount(row.get("amount"))
    except ValueError as exc:
        errors["amount"] = [str(exc)]
    try:
        content = _text(row, "content", limit=MAX_CONTENT, required=False)
    except ValueError as exc:
        errors["content"] = [str(exc)]
    if errors or occurred_at is None:
        raise InvalidCredit(errors)
    return Credit(
        source=TransferSource.STATEMENT,
        external_id=external_id,
        account_number=account,
        amount=abs(amount),
        outgoing=amount < 0,
        content=content,
        occurred_at=occurred_at,
    )


def _statement_amount(value: Any) -> int:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ValueError("must be a whole number of VND")
    text = str(value).strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit():
        raise ValueError("must be a whole number of VND, without separators")
    amount = int(text)
    if amount == 0 or abs(amount) > MAX_AMOUNT:
        raise ValueError("must not be zero and at most 13 digits")
    return amount


def statement_body(row: Mapping[str, Any], *, file: str = "", line: int = 0) -> str:
    """The inbox body of a statement line: its fields as read, and where it came from."""
    body = {name: row.get(name) for name in STATEMENT_COLUMNS}
    body.update(file=file, line=line)
    return json.dumps(body, ensure_ascii=False)


def statement_dedupe_key(credit: Credit) -> str:
    return f"statement:{credit.account_number}:{credit.external_id}"


def credit_from_body(kind: str, body: str) -> Credit:
    """The credit a stored inbox message (kind `transfer` or `statement`) reports."""
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidCredit({"body": ["is not JSON"]}) from None
    if kind == InboundMessage.Kind.STATEMENT:
        if not isinstance(data, dict):
            raise InvalidCredit({"body": ["must be a JSON object"]})
        return credit_from_statement_row(data)
    return credit_from_notification(data)[1]


# --- Deciding ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """What to record for a credit when no payment is involved."""

    status: str
    outcome: str
    reason: str


_NOT_ALNUM = re.compile(r"[^A-Z0-9]+")


def fold_note(content: str) -> str:
    """`portal.text.alnum_upper`, with a shortcut for the plain-ASCII notes most banks send."""
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
        return Decision(Status.IGNORED, IGNORED, "Outgoing transfer: money left the account.")
    receiving = settings.VIETQR_ACCOUNT if account is None else account
    if not _same_account(credit.account_number, receiving):
        return Decision(
            Status.UNMATCHED,
            FOREIGN_ACCOUNT,
            f"Credited to account {credit.account_number}, not the receiving account "
            f"{receiving}: not settled automatically.",
        )
    found = references.find_in(fold_note(credit.content))
    if not found:
        return Decision(Status.UNMATCHED, UNMATCHED, "No valid payment reference in the note.")
    return found


def _no_such_payment(found: list[str]) -> Decision:
    return Decision(
        Status.UNMATCHED,
        UNMATCHED,
        f"The note names {', '.join(found)}, but no VietQR payment has this reference.",
    )


def _choose(credit: Credit, found: list[str], payments: Iterable[Payment]) -> Payment | Decision:
    """The payment a note names; a note naming several is left to an agent unless the amount
    tells them apart."""
    candidates = [p for p in payments if p.method == Payment.Method.VIETQR]
    if not candidates:
        return _no_such_payment(found)
    if len(candidates) > 1:
        exact = [p for p in candidates if p.amount == credit.amount]
        open_ = [p for p in exact if p.status not in services.SETTLED]
        chosen = open_ if len(open_) == 1 else exact
        if len(chosen) != 1:
            return Decision(
                Status.UNMATCHED,
                UNMATCHED,
                "The note names several payments: "
                + ", ".join(sorted(p.reference for p in candidates))
                + ".",
            )
        return chosen[0]
    return candidates[0]


def receiving_partner_id() -> int | None:
    """The partner whose account receives VietQR transfers (the utility's bank)."""
    return (
        Partner.objects.filter(napas_bin=settings.VIETQR_BIN).values_list("pk", flat=True).first()
    )


# --- Applying one message (the inbox handler) -------------------------------------------------
def _transfer_row(credit: Credit, message: InboundMessage) -> tuple[BankTransfer, bool]:
    """The credit's row, locked; True when this message created it.

    INSERT ... ON CONFLICT DO NOTHING: when the same credit arrives by two messages at once, the
    second waits for the first to commit and then finds its row.
    """
    BankTransfer.objects.bulk_create(
        [
            BankTransfer(
                partner_id=message.partner_id or receiving_partner_id(),
                message=message,
                **credit.transfer_fields(),
            )
        ],
        ignore_conflicts=True,
    )
    transfer = BankTransfer.objects.select_for_update().get(
        account_number=credit.account_number, external_id=credit.external_id
    )
    return transfer, transfer.message_id == message.pk


def _save(transfer: BankTransfer, decision: Decision, payment: Payment | None = None) -> None:
    transfer.status = decision.status
    transfer.reason = decision.reason
    transfer.payment = payment
    transfer.save(update_fields=["status", "reason", "payment"])


def _duplicate_detail(pk: int, status: str, source: str) -> str:
    return f"Already recorded as bank transfer {pk} ({status}, from {source}); applied once."


def handle_transfer_message(message: InboundMessage) -> tuple[str, str, Payment | None]:
    """Inbox handler for kinds `transfer` and `statement`; runs with the message row locked.

    Returns (outcome, detail, payment or None) for the message; the BankTransfer row holds the
    same decision for the agents.
    """
    try:
        credit = credit_from_body(message.kind, message.body)
    except InvalidCredit as exc:
        # Checked before storing, so only a stored row edited by hand gets here: keep it.
        return REJECTED, f"Unreadable: {exc}", None
    transfer, created = _transfer_row(credit, message)
    if not created and transfer.status != Status.RECEIVED:
        detail = _duplicate_detail(transfer.pk, transfer.status, transfer.source)
        return DUPLICATE, detail, transfer.payment
    decided = decide_without_payment(credit)
    if isinstance(decided, Decision):
        _save(transfer, decided)
        return decided.outcome, decided.reason, None
    # Locked here, in id order should a note name several: transfer, then payments, then bills.
    named = Payment.objects.select_for_update().filter(reference__in=decided).order_by("pk")
    chosen = _choose(credit, decided, named)
    if isinstance(chosen, Decision):
        _save(transfer, chosen)
        return chosen.outcome, chosen.reason, None
    return _settle(transfer, credit, chosen, message)


def _settle(
    transfer: BankTransfer, credit: Credit, payment: Payment, message: InboundMessage
) -> tuple[str, str, Payment | None]:
    """Decide and apply, with the transfer and the payment (read under lock) locked."""
    if payment.status in services.SETTLED:
        decision = _settled_twice(payment.reference, credit, payment.status)
    elif credit.amount != payment.amount:
        decision = _wrong_amount(payment.reference, payment.amount, credit)
    else:
        previous = payment.status
        outcome = services.payment_mark_succeeded(
            payment_id=payment.pk,
            report=_report(transfer.pk, credit, message),
            amount=credit.amount,
            at=credit.occurred_at,
        )
        decision = _applied(payment.reference, previous, outcome)
    _save(transfer, decision, payment)
    return decision.outcome, decision.reason, payment


def _report(transfer_id: int, credit: Credit, message: InboundMessage | int) -> services.Report:
    source = (
        services.Source.STATEMENT
        if credit.source == TransferSource.STATEMENT
        else services.Source.TRANSFER
    )
    if isinstance(message, int):
        # The batch knows its stored messages by id: an instance loaded with only its id
        # (building a new one would compute every default, the clock included, 40,000 times).
        message = InboundMessage.from_db(None, ["id"], [message])
    return services.Report(
        source=source,
        message=message,
        detail={"transfer": credit.external_id, "bank_transfer_id": transfer_id},
    )


def _settled_twice(reference: str, credit: Credit, status: str) -> Decision:
    return Decision(
        Status.NEEDS_REFUND,
        NEEDS_REFUND,
        f"Payment {reference} was already settled ({status}); this transfer of "
        f"{credit.amount} VND is money received twice and must be given back.",
    )


def _wrong_amount(reference: str, expected: int, credit: Credit) -> Decision:
    return Decision(
        Status.WRONG_AMOUNT,
        WRONG_AMOUNT,
        f"Payment {reference} expects {expected} VND; the transfer brought "
        f"{credit.amount} VND. The payment is left as it was.",
    )


def _applied(reference: str, previous: str, outcome: services.Outcome) -> Decision:
    """The decision once `payment_mark_succeeded` said `outcome` of a `previous` payment."""
    if outcome == services.Outcome.FLAGGED:
        # Cancelled or failed before the money came: recorded on the payment for review.
        return Decision(
            Status.NEEDS_REFUND,
            NEEDS_REFUND,
            f"Payment {reference} was {previous} when the money arrived; give it "
            "back or settle the bills by hand.",
        )
    late = previous == Payment.Status.EXPIRED
    reason = f"Matched payment {reference}"
    reason += " after it had expired (late transfer)." if late else "."
    if outcome == services.Outcome.NEEDS_REFUND:
        reason += " Some of its bills were already paid: the payment carries a refund."
    return Decision(Status.MATCHED, MATCHED_LATE if late else MATCHED, reason)


# --- Many statement lines at once -------------------------------------------------------------
@dataclass(frozen=True)
class StatementLine:
    """A checked statement line: its inbox dedupe key and body, and the credit it reports."""

    key: str
    body: str
    credit: Credit


@dataclass(frozen=True)
class StoredLine:
    """The inbox row an earlier import left for a statement line."""

    message_id: int
    body: str
    processed: bool
    outcome: str


@dataclass
class StatementBatch:
    outcomes: dict[str, str]  # dedupe key -> outcome of the lines decided and stored now
    deferred: list[int]  # stored, unprocessed, naming a payment: `statement_lines_settle`
    seen_before: dict[str, StoredLine]  # lines an earlier import (or a parallel one) stored
    credits: dict[int, Credit] = dataclasses.field(default_factory=dict)  # of the deferred messages


def statement_lines_apply(
    *, lines: Sequence[StatementLine], partner_id: int | None
) -> StatementBatch:
    """Store a batch of statement lines in the inbox and apply them, as the inbox handler would.

    A bank statement is mostly lines no payment is involved in: credits a notification already
    announced, other people's transfers, debits. Those are decided for the whole batch with a
    handful of queries, and each is written to the inbox already processed, in the same
    transaction as its `BankTransfer` row: stored and applied together, exactly once.

    Lines whose note names a VietQR payment are settled in that same transaction, with the
    effects of settling them one by one, under the handler's locks taken in the handler's
    order: their inbox rows and transfers as they are inserted, then the payments in id order,
    then the payments' bills (`services.payments_mark_succeeded`). Their rows are written once,
    with what the payments as read before locking promise; the few that the locked payments
    contradict (a bill paid at a counter meanwhile, say) are corrected before the commit.

    Should settling fail, the batch is stored again without it: the lines naming a payment are
    stored unprocessed and returned as `deferred`, for `statement_lines_settle`.
    """
    try:
        with transaction.atomic():
            return _store_lines(lines, partner_id=partner_id, settle=True)
    except Exception:
        # Rolled back whole: stored again, the lines naming a payment left to the caller.
        logger.warning("statement lines settled apart after a failed batch", exc_info=True)
    return _store_lines(lines, partner_id=partner_id, settle=False)


def _store_lines(
    lines: Sequence[StatementLine], *, partner_id: int | None, settle: bool
) -> StatementBatch:
    by_key = {line.key: line for line in lines}
    receiving = settings.VIETQR_ACCOUNT
    outcomes: dict[str, str] = {}
    deferred_keys: list[str] = []
    with transaction.atomic():
        existing = _existing_transfers(line.credit for line in lines)
        # key -> (outcome, detail, the decision to record as a transfer; None for a duplicate)
        decided: dict[str, tuple[str, str, Decision | None]] = {}
        named: dict[str, list[str]] = {}
        for line in lines:
            known = existing.get((line.credit.account_number, line.credit.external_id))
            if known is not None:
                decided[line.key] = (DUPLICATE, _duplicate_detail(*known), None)
                continue
            decision = decide_without_payment(line.credit, account=receiving)
            if isinstance(decision, Decision):
                decided[line.key] = (decision.outcome, decision.reason, decision)
            else:
                named[line.key] = decision
        vietqr: dict[str, tuple[Any, int, str]] = {}  # reference -> (id, amount, status)
        if named:
            wanted = sorted({reference for found in named.values() for reference in found})
            vietqr = {
                reference: (pk, amount, status)
                for pk, reference, amount, status in Payment.objects.filter(
                    services.AnyOf(F("reference"), wanted), method=Payment.Method.VIETQR
                )
                .order_by()
                .values_list("pk", "reference", "amount", "status")
            }
            for key, found in list(named.items()):
                if not any(reference in vietqr for reference in found):
                    decision = _no_such_payment(found)
                    decided[key] = (decision.outcome, decision.reason, decision)
                    del named[key]
        promised = _promise(named, by_key, vietqr) if settle else {}
        now = timezone.now()
        message_rows = []
        for line in lines:
            row: dict[str, Any] = {
                "kind": InboundMessage.Kind.STATEMENT,
                "dedupe_key": line.key,
                "body": line.body,
                "partner_id": partner_id,
                "received_at": now,
                # In hand: the inbox sweeper leaves the deferred lines to us unless we die.
                "last_enqueued_at": now,
                "processed_at": None,
                "outcome": "",
                "outcome_detail": "",
                "payment_id": None,
            }
            if line.key in decided:
                outcome, detail, _decision = decided[line.key]
                row.update(processed_at=now, outcome=outcome, outcome_detail=detail)
            elif line.key in promised:
                promise, payment_id = promised[line.key]
                row.update(
                    processed_at=now,
                    outcome=promise.outcome,
                    outcome_detail=promise.reason,
                    payment_id=payment_id,
                )
            message_rows.append(row)
        inserted = _insert_new(
            InboundMessage, message_rows, conflict=("dedupe_key",), returning=("id", "dedupe_key")
        )
        stored: dict[str, int] = {key: pk for pk, key in inserted}
        to_record: dict[int, tuple[Credit, Decision, Any]] = {
            stored[key]: (by_key[key].credit, decision, None)
            for key, (_outcome, _detail, decision) in decided.items()
            if decision is not None and key in stored
        }
        to_record.update(
            (stored[key], (by_key[key].credit, promise, payment_id))
            for key, (promise, payment_id) in promised.items()
            if key in stored
        )
        recorded = _record_transfers(
            to_record,
            promised={stored[key] for key in promised if key in stored},
            partner_id=partner_id,
            now=now,
        )
        for key, (outcome, _detail, _decision) in decided.items():
            if key in stored:
                outcomes[key] = outcome if stored[key] in recorded else DUPLICATE
        for key in named:
            if key not in stored:
                continue  # stored by an earlier import: the caller looks at it
            if key in promised and stored[key] in recorded:
                continue
            deferred_keys.append(key)
        if promised:
            waiting = set(deferred_keys)
            settling = [key for key in named if key in stored and key not in waiting]
            outcomes.update(_settle_promised(settling, by_key, named, stored, recorded, promised))
        if settle and deferred_keys:
            # A notification recorded the credit meanwhile: the handler decides, after the commit.
            InboundMessage.objects.filter(
                services.AnyOf(F("pk"), [stored[key] for key in deferred_keys])
            ).update(processed_at=None, outcome="", outcome_detail="", payment=None)
    seen_before: dict[str, StoredLine] = {}
    missing = [line.key for line in lines if line.key not in stored]
    if missing:
        earlier = InboundMessage.objects.filter(dedupe_key__in=missing).values_list(
            "pk", "dedupe_key", "body", "processed_at", "outcome"
        )
        for pk, key, body, processed_at, outcome in earlier:
            seen_before[key] = StoredLine(pk, body, processed_at is not None, outcome)
    return StatementBatch(
        outcomes=outcomes,
        deferred=[stored[key] for key in deferred_keys],
        seen_before=seen_before,
        credits={stored[key]: by_key[key].credit for key in deferred_keys},
    )


def _promise(
    named: Mapping[str, list[str]],
    by_key: Mapping[str, StatementLine],
    vietqr: Mapping[str, tuple[Any, int, str]],
) -> dict[str, tuple[Decision, Any]]:
    """What each line naming a payment will most likely come to, from the payments read
    without a lock, line after line: (decision, the payment's id or None)."""
    status = {reference: row[2] for reference, row in vietqr.items()}
    promised: dict[str, tuple[Decision, Any]] = {}
    for key, found in named.items():
        credit = by_key[key].credit
        present = [reference for reference in found if reference in vietqr]
        if len(present) > 1:
            stand_ins = [
                Payment(
                    pk=vietqr[reference][0],
                    reference=reference,
                    amount=vietqr[reference][1],
                    status=status[reference],
                    method=Payment.Method.VIETQR,
                )
                for reference in present
            ]
            chosen = _choose(credit, found, stand_ins)
            if isinstance(chosen, Decision):
                promised[key] = (chosen, None)
                continue
            present = [chosen.reference]
        reference = present[0]
        pk, amount, _status = vietqr[reference]
        current = status[reference]
        if current in services.SETTLED:
            decision = _settled_twice(reference, credit, current)
        elif credit.amount != amount:
            decision = _wrong_amount(reference, amount, credit)
        elif current not in services.SETTLEABLE:
            decision = _applied(reference, current, services.Outcome.FLAGGED)
        else:
            decision = _applied(reference, current, services.Outcome.APPLIED)
            status[reference] = Payment.Status.SUCCEEDED
        promised[key] = (decision, pk)
    return promised


def _settle_promised(
    keys: list[str],
    by_key: Mapping[str, StatementLine],
    named: Mapping[str, list[str]],
    stored: Mapping[str, int],
    recorded: Mapping[int, int],
    promised: Mapping[str, tuple[Decision, Any]],
) -> dict[str, str]:
    """Settle the lines written with a promise, under the locks; correct the rows whose promise
    the locked payments did not keep. Returns each line's outcome."""
    lines = [
        _Line(
            stored[key],
            by_key[key].credit,
            _Transfer(recorded[stored[key]], stored[key], Status.RECEIVED, "", None),
            named[key],
        )
        for key in keys
    ]
    results: dict[int, tuple[str, str, Any]] = {}
    _settle_named(lines, results)
    messages, transfers = [], []
    outcomes: dict[str, str] = {}
    for key, line in zip(keys, lines, strict=True):
        outcome, detail, payment_id = results[line.message_id]
        outcomes[key] = outcome
        promise, promised_payment = promised[key]
        if (outcome, detail, payment_id) != (promise.outcome, promise.reason, promised_payment):
            messages.append((line.message_id, outcome, detail, payment_id))
        transfer = line.transfer
        if (transfer.status, transfer.reason, transfer.payment_id) != (
            promise.status,
            promise.reason,
            promised_payment,
        ):
            transfers.append((transfer.pk, transfer.status, transfer.reason, transfer.payment_id))
    services.bulk_update_rows(InboundMessage, ("outcome", "outcome_detail", "payment"), messages)
    services.bulk_update_rows(BankTransfer, ("status", "reason", "payment"), transfers)
    return outcomes


def _record_transfers(
    transfers: Mapping[int, tuple[Credit, Decision, Any]],
    *,
    promised: set[int],
    partner_id: int | None,
    now: datetime,
) -> dict[int, int]:
    """Insert the transfers decided (or promised), keyed by their message id; returns message id
    -> transfer id of those inserted. A decided message whose credit a notification recorded
    meanwhile is marked a duplicate; a promised one is left to the caller."""
    rows = [
        {
            "partner_id": partner_id,
            **credit.transfer_fields(),
            "received_at": now,
            "status": decision.status,
            "reason": decision.reason,
            "payment_id": payment_id,
            "message_id": message_id,
        }
        for message_id, (credit, decision, payment_id) in transfers.items()
    ]
    inserted = dict(
        _insert_new(
            BankTransfer,
            rows,
            conflict=("account_number", "external_id"),
            returning=("message_id", "id"),
        )
    )
    raced = [
        message_id
        for message_id in transfers
        if message_id not in inserted and message_id not in promised
    ]
    if raced:
        known = _existing_transfers(transfers[message_id][0] for message_id in raced)
        for message_id in raced:
            credit = transfers[message_id][0]
            InboundMessage.objects.filter(pk=message_id).update(
                outcome=DUPLICATE,
                outcome_detail=_duplicate_detail(
                    *known[(credit.account_number, credit.external_id)]
                ),
            )
    return inserted


def statement_apply_each(*, message_ids: list[int], group: int = 100) -> dict[int, str]:
    """Apply stored lines one by one through the inbox (`inbox.inbox_process`), each under its
    payment's lock; a group shares one commit. Returns each message's outcome, or "error" for
    one whose handler failed (recorded on the row; the inbox sweeper retries it)."""
    outcomes: dict[int, str] = {}
    for start in range(0, len(message_ids), group):
        chunk = message_ids[start : start + group]
        try:
            with transaction.atomic():
                for message_id in chunk:
                    try:
                        outcomes[message_id] = inbox.inbox_process(message_id=message_id)
                    except Exception:  # noqa: BLE001 - rolled back to its savepoint, recorded
                        outcomes[message_id] = "error"
        except DatabaseError:
            # The connection itself failed: nothing of the group stayed; the sweeper retries.
            outcomes.update(dict.fromkeys(chunk, "error"))
    return outcomes


def statement_lines_settle(
    *, message_ids: list[int], credits: Mapping[int, Credit] | None = None, group: int = 5000
) -> dict[int, str]:
    """Apply stored lines that name a payment, `group` lines per transaction, with the effects
    `statement_apply_each` would have, one by one through the inbox handler, in the same order.

    `credits` are the lines' credits as the caller read them from the same bodies (the others
    are read from the inbox rows). Each group takes the handler's locks in the handler's order,
    each kind in id order: the inbox rows, the transfers, the payments named, then (in
    `services.payments_mark_succeeded`) their bills. A notification for one of these payments
    arriving meanwhile takes the same locks in the same order: one waits for the other, they
    never deadlock, and the money is applied once. Returns each message's outcome, like
    `statement_apply_each`.

    A group that fails as a whole (a lost connection, a rule the database refuses) is rolled
    back and applied one by one instead, which records each failing line's error on its row.
    """
    outcomes: dict[int, str] = {}
    for start in range(0, len(message_ids), group):
        chunk = message_ids[start : start + group]
        try:
            with transaction.atomic():
                decided, rest = _settle_group(chunk, credits or {})
        except Exception:
            # Rolled back whole: applied one by one below, each error kept on its row.
            logger.warning("statement lines applied one by one after a failed batch", exc_info=True)
            decided, rest = {}, chunk
        outcomes.update(decided)
        if rest:
            outcomes.update(statement_apply_each(message_ids=rest))
    return outcomes


@dataclass
class _Transfer:
    """The columns of a locked BankTransfer row that deciding reads and writes."""

    pk: int
    message_id: int | None
    status: str
    source: str
    payment_id: Any
    reason: str = ""


@dataclass(frozen=True)
class _Line:
    """A line whose note names payments, with its message and transfer locked."""

    message_id: int
    credit: Credit
    transfer: _Transfer
    found: list[str]


HANDLED_KINDS = frozenset({InboundMessage.Kind.TRANSFER, InboundMessage.Kind.STATEMENT})


def _settle_group(
    message_ids: list[int], credits: Mapping[int, Credit]
) -> tuple[dict[int, str], list[int]]:
    """One transaction of `statement_lines_settle`: (outcomes, lines left to the inbox handler).

    `handle_transfer_message` step by step, for many messages at once.
    """
    messages = {
        pk: (kind, partner_id, payment_id, processed_at, outcome)
        for pk, kind, partner_id, payment_id, processed_at, outcome in (
            InboundMessage.objects.select_for_update()
            .filter(services.AnyOf(F("pk"), message_ids))
            .order_by("pk")
            .values_list("pk", "kind", "partner", "payment", "processed_at", "outcome")
        )
    }
    unread = [pk for pk in message_ids if pk in messages and pk not in credits]
    bodies = dict(
        InboundMessage.objects.filter(services.AnyOf(F("pk"), unread)).values_list("pk", "body")
        if unread
        else []
    )
    outcomes: dict[int, str] = {}
    rest: list[int] = []
    # message id -> (outcome, detail, payment id or None), as the handler returns them
    results: dict[int, tuple[str, str, Any]] = {}
    readable: list[tuple[int, int | None, Credit]] = []  # (message, partner, credit)
    claimed: dict[tuple[str, str], int] = {}
    for message_id in message_ids:
        row = messages.get(message_id)
        if row is None or row[0] not in HANDLED_KINDS:
            rest.append(message_id)  # not ours to batch: the inbox handler says what it is
            continue
        kind, partner_id, _payment, processed_at, outcome = row
        if processed_at is not None:
            outcomes[message_id] = outcome  # applied meanwhile (the inbox sweeper)
            continue
        credit = credits.get(message_id)
        if credit is None:
            try:
                credit = credit_from_body(kind, bodies[message_id])
            except InvalidCredit as exc:
                results[message_id] = (REJECTED, f"Unreadable: {exc}", None)
                continue
        key = (credit.account_number, credit.external_id)
        if claimed.setdefault(key, message_id) != message_id:
            # The same credit twice in one group: once the first is decided, this one is a
            # duplicate, which the handler says after this group commits.
            rest.append(message_id)
            continue
        readable.append((message_id, partner_id, credit))
    transfers = _lock_transfer_rows(readable)
    named: list[_Line] = []
    for message_id, _partner, credit in readable:
        transfer = transfers[(credit.account_number, credit.external_id)]
        if transfer.message_id != message_id and transfer.status != Status.RECEIVED:
            detail = _duplicate_detail(transfer.pk, transfer.status, transfer.source)
            results[message_id] = (DUPLICATE, detail, transfer.payment_id)
            continue
        decided = decide_without_payment(credit)
        if isinstance(decided, Decision):
            _decide(transfer, decided, None)
            results[message_id] = (decided.outcome, decided.reason, None)
            continue
        named.append(_Line(message_id, credit, transfer, decided))
    if named:
        _settle_named(named, results)
    services.bulk_update_rows(
        BankTransfer,
        ("status", "reason", "payment"),
        [
            (transfer.pk, transfer.status, transfer.reason, transfer.payment_id)
            for transfer in transfers.values()
            if transfer.reason
        ],
    )
    now = timezone.now()
    processed = []
    for message_id, (outcome, detail, payment_id) in results.items():
        # `inbox_mark_processed`: the payment is kept when the handler names none.
        payment_id = messages[message_id][2] if payment_id is None else payment_id
        processed.append((message_id, now, outcome, detail, payment_id))
        outcomes[message_id] = outcome
    services.bulk_update_rows(
        InboundMessage, ("processed_at", "outcome", "outcome_detail", "payment"), processed
    )
    return outcomes, rest


def _lock_transfer_rows(
    readable: list[tuple[int, int | None, Credit]],
) -> dict[tuple[str, str], _Transfer]:
    """`_transfer_row` for many credits: insert the new rows (ours, and locked, until we commit),
    then lock the rows that were there already, in id order."""
    if not readable:
        return {}
    receiving: int | None = None
    if any(partner_id is None for _message, partner_id, _credit in readable):
        receiving = receiving_partner_id()
    now = timezone.now()
    rows = [
        {
            "partner_id": partner_id or receiving,
            **credit.transfer_fields(),
            "received_at": now,
            "message_id": message_id,
        }
        for message_id, partner_id, credit in readable
    ]
    inserted = _insert_new(
        BankTransfer,
        rows,
        conflict=("account_number", "external_id"),
        returning=("id", "account_number", "external_id", "message_id"),
    )
    transfers = {
        (account, external): _Transfer(pk, message_id, Status.RECEIVED, "", None)
        for pk, account, external, message_id in inserted
    }
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
                services.pg_array(account for account, _ in keys),
                services.pg_array(external for _, external in keys),
            ],
        )
        found = cursor.fetchall()
        if not lock or not found:
            return sorted(found, key=lambda row: row[2])
        cursor.execute(
            "SELECT account_number, external_id, id, message_id, status, source, payment_id "
            "FROM payments_banktransfer WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE",
            [services.pg_array(row[2] for row in found)],
        )
        return cursor.fetchall()


def _decide(transfer: _Transfer, decision: Decision, payment: Payment | None) -> None:
    # `_save`, written later with the others.
    transfer.status, transfer.reason = decision.status, decision.reason
    transfer.payment_id = payment.pk if payment is not None else None


def _settle_named(named: list[_Line], results: dict[int, tuple[str, str, Any]]) -> None:
    """Choose each line's payment and settle them through `services.payments_mark_succeeded`.

    Settlements go in line order, so a payment two lines pay is settled by the first and the
    second brings money to give back, as one by one. Only which payment a note naming several
    goes to depends on what earlier lines did to them: such a line waits until the lines
    before it are settled.
    """
    references = sorted({reference for line in named for reference in line.found})
    # Locked here, in id order: transfers, then payments, then (by the service) bills.
    locked = list(
        Payment.objects.select_for_update()
        .filter(services.AnyOf(F("reference"), references))
        .order_by("pk")
        .only(*services.SETTLING_FIELDS)
    )
    position = {payment.pk: index for index, payment in enumerate(locked)}
    by_reference = {payment.reference: payment.pk for payment in locked}
    current = {payment.pk: payment for payment in locked}
    pending: list[tuple[_Line, Payment]] = []

    def settle() -> None:
        settled = services.payments_mark_succeeded(
            settlements=[
                services.Settlement(
                    payment_id=payment.pk,
                    report=_report(line.transfer.pk, line.credit, line.message_id),
                    amount=line.credit.amount,
                    at=line.credit.occurred_at,
                )
                for line, payment in pending
            ],
            locked=current,
        )
        for (line, payment), result in zip(pending, settled, strict=True):
            if result.previous in services.SETTLED:
                decision = _settled_twice(payment.reference, line.credit, result.previous)
            elif result.outcome is None:
                decision = _wrong_amount(payment.reference, payment.amount, line.credit)
            else:
                decision = _applied(payment.reference, result.previous, result.outcome)
            _decide(line.transfer, decision, payment)
            results[line.message_id] = (decision.outcome, decision.reason, payment.pk)
        pending.clear()

    for line in named:
        # The payments the note names, in id order, as the handler's locking query lists them.
        pks = sorted(
            {by_reference[r] for r in line.found if r in by_reference}, key=position.__getitem__
        )
        candidates = [current[pk] for pk in pks]
        vietqr = {p.pk for p in candidates if p.method == Payment.Method.VIETQR}
        if len(vietqr) > 1 and vietqr & {payment.pk for _line, payment in pending}:
            settle()
        chosen = _choose(line.credit, line.found, candidates)
        if isinstance(chosen, Decision):
            _decide(line.transfer, chosen, None)
            results[line.message_id] = (chosen.outcome, chosen.reason, None)
            continue
        pending.append((line, chosen))
    if pending:
        settle()


def _existing_transfers(credits: Iterable[Credit]) -> dict[tuple[str, str], tuple[int, str, str]]:
    """(account, bank reference) -> (id, status, source) of the transfers already recorded."""
    keys = list({(credit.account_number, credit.external_id) for credit in credits})
    return {
        (account, external): (pk, status, source)
        for account, external, pk, _message, status, source, _payment in _transfers_by_key(
            keys, lock=False
        )
    }


# --- Bulk writes --------------------------------------------------------------------------------
def _insert_new(
    model: type[Model],
    rows: list[dict[str, Any]],
    *,
    conflict: tuple[str, ...],
    returning: tuple[str, ...],
) -> list[tuple[Any, ...]]:
    """INSERT rows, skipping those that clash on the `conflict` columns; returns the
    `returning` columns of the rows actually inserted. Must run inside a transaction."""
    if not rows:
        return []
    if connection.vendor == "postgresql":
        return _pg_copy_insert(model, rows, conflict=conflict, returning=returning)
    # The embedded SQLite database of `make run`: statements there are small.
    result = []
    for row in rows:
        try:
            with transaction.atomic():
                created = model._default_manager.create(**row)
        except IntegrityError:
            continue
        result.append(tuple(getattr(created, name) for name in returning))
    return result


def _pg_copy_insert(
    model: type[Model],
    rows: list[dict[str, Any]],
    *,
    conflict: tuple[str, ...],
    returning: tuple[str, ...],
) -> list[tuple[Any, ...]]:
    # COPY into a scratch table, then one INSERT ... ON CONFLICT DO NOTHING RETURNING: a
    # hundred times cheaper per row than a parameterised multi-row INSERT, whose thousands of
    # parameters cost more to send than the rows themselves.
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    given = rows[0].keys()
    from psycopg.types.json import Json, Jsonb

    defaults: dict[str, Any] = {}
    for field in fields:
        if field.attname not in given:
            value = field.get_db_prep_save(field.get_default(), connection)
            # Dumped once here rather than once per row by COPY.
            defaults[field.attname] = (
                json.dumps(value.obj) if isinstance(value, Json | Jsonb) else value
            )
    quote = connection.ops.quote_name

    def column_list(names: Iterable[str]) -> str:
        # get_field knows attnames too ("message_id"); every name here is a concrete field.
        return ", ".join(
            quote(str(cast(Field, model._meta.get_field(name)).column)) for name in names
        )

    table = quote(model._meta.db_table)
    scratch = quote(f"bulk_{model._meta.db_table}")
    columns = column_list(field.name for field in fields)
    on, back = column_list(conflict), column_list(returning)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {scratch} ON COMMIT DROP AS "  # noqa: S608 - names, not data
            f"SELECT {columns} FROM {table} WITH NO DATA"
        )
        with cursor.cursor.copy(f"COPY {scratch} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    [
                        row[field.attname] if field.attname in row else defaults[field.attname]
                        for field in fields
                    ]
                )
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {scratch} "  # noqa: S608
            f"ON CONFLICT ({on}) DO NOTHING RETURNING {back}"
        )
        inserted = cursor.fetchall()
        cursor.execute(f"DROP TABLE {scratch}")
    return inserted
