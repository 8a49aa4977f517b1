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
comes a hundred thousand lines at once (`statement_lines_apply`): the lines no payment is
involved in are decided for the whole batch with the same rules, and only the lines naming a
payment go through the inbox handler one by one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Field, Model
from django.utils import timezone

from payments import inbox, references, services
from payments.models import BankTransfer, InboundMessage, Partner, Payment
from portal.text import alnum_upper

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

SETTLED_STATUSES = frozenset(
    {Payment.Status.SUCCEEDED, Payment.Status.REFUNDED, Payment.Status.REVERSED}
)


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
        open_ = [p for p in exact if p.status not in SETTLED_STATUSES]
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


def _receiving_partner_id() -> int | None:
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
                partner_id=message.partner_id or _receiving_partner_id(),
                source=credit.source,
                external_id=credit.external_id,
                account_number=credit.account_number,
                amount=credit.amount,
                content=credit.content,
                occurred_at=credit.occurred_at,
                message=message,
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
    reference = payment.reference
    if payment.status in SETTLED_STATUSES:
        decision = Decision(
            Status.NEEDS_REFUND,
            NEEDS_REFUND,
            f"Payment {reference} was already settled ({payment.status}); this transfer of "
            f"{credit.amount} VND is money received twice and must be given back.",
        )
    elif credit.amount != payment.amount:
        decision = Decision(
            Status.WRONG_AMOUNT,
            WRONG_AMOUNT,
            f"Payment {reference} expects {payment.amount} VND; the transfer brought "
            f"{credit.amount} VND. The payment is left as it was.",
        )
    else:
        source = (
            services.Source.STATEMENT
            if credit.source == TransferSource.STATEMENT
            else services.Source.TRANSFER
        )
        late = payment.status == Payment.Status.EXPIRED
        outcome = services.payment_mark_succeeded(
            payment_id=payment.pk,
            report=services.Report(
                source=source,
                message=message,
                detail={"transfer": credit.external_id, "bank_transfer_id": transfer.pk},
            ),
            amount=credit.amount,
            at=credit.occurred_at,
        )
        if outcome == services.Outcome.FLAGGED:
            # Cancelled or failed before the money came: recorded on the payment for review.
            decision = Decision(
                Status.NEEDS_REFUND,
                NEEDS_REFUND,
                f"Payment {reference} was {payment.status} when the money arrived; give it "
                "back or settle the bills by hand.",
            )
        else:
            reason = f"Matched payment {reference}"
            reason += " after it had expired (late transfer)." if late else "."
            if outcome == services.Outcome.NEEDS_REFUND:
                reason += " Some of its bills were already paid: the payment carries a refund."
            decision = Decision(Status.MATCHED, MATCHED_LATE if late else MATCHED, reason)
    _save(transfer, decision, payment)
    return decision.outcome, decision.reason, payment


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
    deferred: list[int]  # stored, unprocessed, naming a payment: `statement_apply_each`
    seen_before: dict[str, StoredLine]  # lines an earlier import (or a parallel one) stored


def statement_lines_apply(*, lines: list[StatementLine], partner_id: int | None) -> StatementBatch:
    """Store a batch of statement lines in the inbox and apply them, as the inbox handler would.

    A bank statement is mostly lines no payment is involved in: credits a notification already
    announced, other people's transfers, debits. Those are decided for the whole batch with a
    handful of queries, and each is written to the inbox already processed, in the same
    transaction as its `BankTransfer` row: stored and applied together, exactly once. Lines
    whose note names an existing VietQR payment are stored unprocessed and returned, to be
    applied one by one under the payment's lock (`statement_apply_each`), like a notification.
    """
    by_key = {line.key: line for line in lines}
    receiving = settings.VIETQR_ACCOUNT
    outcomes: dict[str, str] = {}
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
        if named:
            wanted = {reference for found in named.values() for reference in found}
            vietqr = set(
                Payment.objects.filter(
                    reference__in=wanted, method=Payment.Method.VIETQR
                ).values_list("reference", flat=True)
            )
            for key, found in list(named.items()):
                if not vietqr.intersection(found):
                    decision = _no_such_payment(found)
                    decided[key] = (decision.outcome, decision.reason, decision)
                    del named[key]
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
            }
            if line.key in decided:
                outcome, detail, _decision = decided[line.key]
                row.update(processed_at=now, outcome=outcome, outcome_detail=detail)
            message_rows.append(row)
        inserted = _insert_new(
            InboundMessage, message_rows, conflict=("dedupe_key",), returning=("id", "dedupe_key")
        )
        stored: dict[str, int] = {key: pk for pk, key in inserted}
        transfers = {
            stored[key]: (by_key[key].credit, decision)
            for key, (_outcome, _detail, decision) in decided.items()
            if decision is not None and key in stored
        }
        raced = _record_decided(transfers, partner_id=partner_id, now=now)
        for key, (outcome, _detail, _decision) in decided.items():
            if key in stored:
                outcomes[key] = DUPLICATE if stored[key] in raced else outcome
    seen_before: dict[str, StoredLine] = {}
    missing = [line.key for line in lines if line.key not in stored]
    if missing:
        earlier = InboundMessage.objects.filter(dedupe_key__in=missing).values_list(
            "pk", "dedupe_key", "body", "processed_at", "outcome"
        )
        for pk, key, body, processed_at, outcome in earlier:
            seen_before[key] = StoredLine(pk, body, processed_at is not None, outcome)
    deferred = [stored[key] for key in named if key in stored]
    return StatementBatch(outcomes=outcomes, deferred=deferred, seen_before=seen_before)


def _record_decided(
    transfers: Mapping[int, tuple[Credit, Decision]], *, partner_id: int | None, now: datetime
) -> set[int]:
    """Insert the transfers decided without a payment, keyed by their message id; returns the
    messages whose credit a notification recorded meanwhile, now marked duplicates."""
    rows = [
        {
            "partner_id": partner_id,
            "source": credit.source,
            "external_id": credit.external_id,
            "account_number": credit.account_number,
            "amount": credit.amount,
            "content": credit.content,
            "occurred_at": credit.occurred_at,
            "received_at": now,
            "status": decision.status,
            "reason": decision.reason,
            "message_id": message_id,
        }
        for message_id, (credit, decision) in transfers.items()
    ]
    inserted = {
        pk
        for (pk,) in _insert_new(
            BankTransfer,
            rows,
            conflict=("account_number", "external_id"),
            returning=("message_id",),
        )
    }
    raced = {message_id for message_id in transfers if message_id not in inserted}
    if raced:
        recorded = _existing_transfers(transfers[message_id][0] for message_id in raced)
        for message_id in raced:
            credit = transfers[message_id][0]
            known = recorded[(credit.account_number, credit.external_id)]
            InboundMessage.objects.filter(pk=message_id).update(
                outcome=DUPLICATE, outcome_detail=_duplicate_detail(*known)
            )
    return raced


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


def _existing_transfers(credits: Iterable[Credit]) -> dict[tuple[str, str], tuple[int, str, str]]:
    """(account, bank reference) -> (id, status, source) of the transfers already recorded."""
    keys = {(credit.account_number, credit.external_id) for credit in credits}
    if not keys:
        return {}
    rows = BankTransfer.objects.filter(
        account_number__in={account for account, _ in keys},
        external_id__in={external for _, external in keys},
    ).values_list("account_number", "external_id", "pk", "status", "source")
    return {
        (account, external): (pk, status, source)
        for account, external, pk, status, source in rows
        if (account, external) in keys
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
