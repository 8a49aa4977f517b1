"""The inbox: where every bank message is kept before it is acted on, and the one module that
says a message was applied.

1. Receive: `inbox_store` (or `inbox_receive`, the callbacks' one-statement form) saves the
   message under its dedupe key, unique in the database: a repeat finds the first row and is
   told so. `inbox_wake` then asks for an applier after the commit, unless one is awake: no
   task per message.
2. Apply: an applier (`payments.applier`) claims stored rows with `inbox_claim`
   (`FOR UPDATE SKIP LOCKED`: two appliers never take the same row), has their channel decide
   them, and writes the outcomes with `inbox_mark_applied` in the same transaction: a message
   is applied exactly once, whoever claims it and however often it is delivered. A batch that
   fails is rolled back and its rows counted with `inbox_mark_failed`; they wait
   INBOX_RETRY_AFTER and, after MAX_ATTEMPTS, are set aside for an agent.
3. Answer: a synchronous channel (the collection API) applies and answers in one transaction
   and keeps its answer with `inbox_finish`, so a repeat gets the same answer.
4. Refuse and forget: a message refused before anything is applied (forged signature, missing
   credentials, unlisted address) is kept by `inbox_refuse`, which anyone can make us call, so it
   keeps little (INBOX_REFUSED_BODY_LIMIT), counts refusals per client address and keeps none
   past INBOX_REFUSED_RATE_LIMIT; `inbox_purge_refused` deletes them after
   INBOX_REFUSED_RETENTION_DAYS. Accepted messages are never deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple, cast

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, F, Field, OuterRef, Q
from django.utils import timezone

from common import fastcache, ratelimit
from common.cache_guard import outage_tolerated
from payments.bulk import AnyOf, bulk_insert_rows, bulk_update_rows, reserve_ids
from payments.models import (
    INBOX_REFUSED_OUTCOMES,
    BankTransfer,
    InboundMessage,
    Partner,
    Payment,
    PaymentEvent,
)

logger = logging.getLogger(__name__)

Outcome = InboundMessage.Outcome
Kind = InboundMessage.Kind

# After this many failed attempts a message is set aside; it waits for an agent.
MAX_ATTEMPTS = 10

# The applier task, sent by name: the inbox sits below the tasks that drain it.
APPLY_TASK = "payments.tasks.apply_inbox"
WAKE_KEY = "inbox:wake"

# Headers worth keeping; cookies and authorisation never are.
_KEPT_HEADERS = (
    "Content-Type",
    "User-Agent",
    "X-Forwarded-For",
    "X-Partner-Code",
    "X-Timestamp",
    "X-Request-Id",
)


class Applied(NamedTuple):
    """What a channel decided for one message: kept on the row as it is marked processed."""

    outcome: Outcome
    detail: str = ""
    payment_id: Any = None  # None keeps the payment the row already names


class Claimed(NamedTuple):
    """A stored message an applier holds, as its channel reads it."""

    pk: int
    kind: str
    partner_id: int | None
    payment_id: Any
    body: str


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def keep_headers(headers: Mapping[str, str], remote_addr: str = "") -> dict[str, str]:
    kept = {name: headers[name] for name in _KEPT_HEADERS if name in headers}
    if remote_addr:
        kept["Remote-Addr"] = remote_addr
    return kept


# --- Receiving ----------------------------------------------------------------------------------
_STORED_FIELDS = (
    "kind",
    "dedupe_key",
    "partner",
    "body",
    "headers",
    "signature_valid",
    "payment",
    "received_at",
    "processed_at",
    "outcome",
    "outcome_detail",
    "attempts",
    "response_status",
    "response_body",
)


def _as_text(body: str | Mapping[str, Any]) -> str:
    return body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, sort_keys=True)


def inbox_receive(
    *,
    kind: str,
    dedupe_key: str,
    body: str | Mapping[str, Any],
    partner_id: int | None = None,
    headers: Mapping[str, str] | None = None,
    signature_valid: bool | None = None,
    payment_id: Any = None,
    processed: Applied | None = None,
    response: tuple[int, Any] | None = None,
) -> int | None:
    """Store a message once, with the answer it gets, in one statement; the new row's id, or
    None when a message with this key was stored before (the first keeps its answer).

    `processed` stores a message that needs no further work (a forged signature, an order we
    do not know) already marked with its outcome, so no applier ever takes it.
    """
    now = timezone.now()
    values: dict[str, Any] = {
        "kind": kind,
        "dedupe_key": dedupe_key,
        "partner": partner_id,
        "body": _as_text(body),
        "headers": dict(headers or {}),
        "signature_valid": signature_valid,
        "payment": payment_id,
        "received_at": now,
        "processed_at": now if processed else None,
        "outcome": processed.outcome if processed else "",
        "outcome_detail": processed.detail if processed else "",
        "attempts": 0,
        "response_status": response[0] if response else None,
        "response_body": response[1] if response else None,
    }
    fields = [cast(Field, InboundMessage._meta.get_field(name)) for name in _STORED_FIELDS]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in fields)
    params = [field.get_db_prep_save(values[field.name], connection) for field in fields]
    table = quote(InboundMessage._meta.db_table)
    with connection.cursor() as cursor:
        # One statement, no savepoint: the unique key decides who was first.
        cursor.execute(
            f"INSERT INTO {table} ({columns}) "  # noqa: S608 - names only
            f"VALUES ({', '.join(['%s'] * len(fields))}) "
            f"ON CONFLICT ({quote('dedupe_key')}) DO NOTHING RETURNING {quote('id')}",
            params,
        )
        row = cursor.fetchone()
    return row[0] if row else None


# --- Refusing -----------------------------------------------------------------------------------
REFUSED = tuple(Outcome(value) for value in INBOX_REFUSED_OUTCOMES)
REFUSED_SCOPE = "inbox-refused"
# A kept header of a refused message is cut here; real senders' headers are far shorter.
_REFUSED_HEADER_LIMIT = 200


def inbox_refuse(
    *,
    kind: str,
    dedupe_key: str,
    body: str | Mapping[str, Any],
    address: str,
    refusal: Applied,
    partner_id: int | None = None,
    headers: Mapping[str, str] | None = None,
    signature_valid: bool | None = None,
    response: tuple[int, Any] | None = None,
) -> int | None:
    """Keep a message refused before anything was applied, already processed with `refusal`;
    the new row's id, or None when it was not kept (a repeat of its key, or `address` is past
    its budget of refusals). The caller answers the same either way.

    Anyone can send these, as fast as they like: the body is cut to INBOX_REFUSED_BODY_LIMIT
    characters, and each refusal is counted against the client address (the flood is logged
    when the address first goes over INBOX_REFUSED_RATE_LIMIT in a window, and nothing more of
    it is kept until the window ends).
    """
    if refusal.outcome not in REFUSED:
        raise ValueError(f"{refusal.outcome!r} is not a refusal")
    rate = settings.INBOX_REFUSED_RATE_LIMIT
    decision = ratelimit.hit(REFUSED_SCOPE, address or "unknown", rate)
    if not decision.allowed:
        if decision.count == ratelimit.parse_rate(rate)[0] + 1:
            logger.warning(
                "refused %s messages from %s over %s: no more are kept this window",
                kind,
                address,
                rate,
            )
        return None
    return inbox_receive(
        kind=kind,
        dedupe_key=dedupe_key,
        body=_as_text(body)[: settings.INBOX_REFUSED_BODY_LIMIT],
        partner_id=partner_id,
        headers={
            name: str(value)[:_REFUSED_HEADER_LIMIT] for name, value in (headers or {}).items()
        },
        signature_valid=signature_valid,
        processed=refusal,
        response=response,
    )


def inbox_purge_refused(*, older_than: datetime, batch_size: int = 1000) -> int:
    """Delete refused messages received before `older_than`, a batch per transaction; how many.

    Only rows nothing points at: a payment event or a transfer citing a message keeps it (it
    would not have been refused, but the PROTECT keys are not argued with).
    """
    refused = (
        InboundMessage.objects.filter(
            outcome__in=REFUSED,
            processed_at__isnull=False,
            received_at__lt=older_than,
        )
        .exclude(Exists(PaymentEvent.objects.filter(message=OuterRef("pk"))))
        .exclude(Exists(BankTransfer.objects.filter(message=OuterRef("pk"))))
    )
    purged = 0
    while True:
        with transaction.atomic():
            ids = list(refused.order_by("pk").values_list("pk", flat=True)[:batch_size])
            if not ids:
                return purged
            deleted, _ = InboundMessage.objects.filter(AnyOf(F("pk"), ids)).delete()
            purged += deleted


class Arriving(NamedTuple):
    """A message applied in the transaction that stores it (a statement's line), so its row is
    written once, already applied: see `inbox_stored`, `inbox_take_arriving`."""

    dedupe_key: str
    body: str
    partner_id: int | None


class Stored(NamedTuple):
    """A message found stored under its key."""

    pk: int
    body: str
    processed: bool


@contextmanager
def inbox_turn(kind: str) -> Iterator[None]:
    """The kind's turn to store messages applied as they arrive (statement lines), held by one
    import from its first look-up (`inbox_stored`) to its last commit: a key it did not find
    stored is stored by no one else meanwhile, so its message may be applied first and stored
    applied (`inbox_take_arriving`), in as many transactions and connections at once as the
    import likes. Another import of the kind waits for the turn.

    A session lock, so that it spans the import's transactions; inside a caller's transaction
    it lasts as long as that transaction instead. On SQLite the database's single writer is the
    turn.
    """
    if connection.vendor != "postgresql":
        yield
        return
    key = f"inbox:{kind}"
    if connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [key])
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [key])
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])
        except DatabaseError:
            # The session that held the turn is gone, and the turn with it: what the import
            # committed stands, and its summary is still owed to the operator.
            logger.warning("the %s turn's session ended before the import did", kind)


def inbox_stored(*, keys: Sequence[str]) -> dict[str, Stored]:
    """The messages stored under these keys, by key. The caller holds the turn of their kind
    (`inbox_turn`)."""
    if not keys:
        return {}
    return {
        key: Stored(pk, body, processed_at is not None)
        for pk, key, body, processed_at in InboundMessage.objects.filter(
            AnyOf(F("dedupe_key"), list(keys))
        ).values_list("pk", "dedupe_key", "body", "processed_at")
    }


def inbox_take_arriving(*, kind: str, messages: Sequence[Arriving]) -> list[Claimed]:
    """Hold messages not stored yet as an applier holds claimed ones: their ids are reserved
    now, their rows written applied by `inbox_store_applied` in the same transaction. The
    caller has the kind's turn (`inbox_turn`) and found none of their keys (`inbox_stored`)."""
    ids = reserve_ids(InboundMessage, len(messages))
    return [
        Claimed(pk, kind, message.partner_id, None, message.body)
        for pk, message in zip(ids, messages, strict=True)
    ]


_ARRIVING_FIELDS = (
    "id",
    "kind",
    "dedupe_key",
    "partner",
    "body",
    "headers",
    "payment",
    "received_at",
    "processed_at",
    "outcome",
    "outcome_detail",
    "attempts",
    "last_enqueued_at",
)


def inbox_store_applied(
    *,
    messages: Sequence[Arriving],
    claimed: Sequence[Claimed],
    results: Mapping[int, Applied],
) -> None:
    """Write taken messages (`inbox_take_arriving`) with what their channel decided: one row
    each, already processed. A message without its result fails the batch, as in
    `inbox_mark_applied`."""
    missing = [held.pk for held in claimed if held.pk not in results]
    if missing:
        raise RuntimeError(f"no outcome for inbox message(s) {missing}")
    now = timezone.now()
    bulk_insert_rows(
        InboundMessage,
        _ARRIVING_FIELDS,
        [
            (
                held.pk,
                held.kind,
                message.dedupe_key,
                message.partner_id,
                message.body,
                {},
                applied.payment_id,
                now,
                now,
                str(applied.outcome),
                applied.detail,
                0,
                None,
            )
            for message, held in zip(messages, claimed, strict=True)
            for applied in (results[held.pk],)
        ],
    )


def inbox_store_failed(*, kind: str, message: Arriving, error: BaseException) -> None:
    """Store a message that could not be applied as it arrived, with its error counted as a
    failed attempt: the appliers retry it (`inbox_claim`) like any stored message."""
    now = timezone.now()
    bulk_insert_rows(
        InboundMessage,
        _ARRIVING_FIELDS[1:],
        [
            (
                kind,
                message.dedupe_key,
                message.partner_id,
                message.body,
                {},
                None,
                now,
                None,
                Outcome.ERROR.value,
                repr(error)[:2000],
                1,
                now,
            )
        ],
    )


def inbox_store(
    *,
    kind: str,
    dedupe_key: str,
    body: str | Mapping[str, Any],
    partner: Partner | None = None,
    headers: Mapping[str, str] | None = None,
    signature_valid: bool | None = None,
    payment: Payment | None = None,
    processed: Applied | None = None,
) -> tuple[InboundMessage, bool]:
    """Store a message once. Returns (message, created); a repeat returns the first row."""
    message_id = inbox_receive(
        kind=kind,
        dedupe_key=dedupe_key,
        body=body,
        partner_id=partner.pk if partner else None,
        headers=headers,
        signature_valid=signature_valid,
        payment_id=payment.pk if payment else None,
        processed=processed,
    )
    if message_id is None:
        return InboundMessage.objects.get(dedupe_key=dedupe_key), False
    return InboundMessage.objects.get(pk=message_id), True


def inbox_set_response(*, message_id: int, status: int, body: Any) -> None:
    """Remember what we answered, so a repeat of the request gets the same answer."""
    InboundMessage.objects.filter(pk=message_id).update(response_status=status, response_body=body)


def inbox_wake() -> None:
    """Ask for an applier once the current transaction commits, unless one is awake already:
    an awake applier takes this message in its next round. At most one task a second from
    this process even when the cache is not shared (the key lives a second).

    Never fails the caller: with the cache or the broker down the message is stored all the
    same, and the inbox sweeper applies it."""

    def wake() -> None:
        from celery import current_app

        with outage_tolerated("applier not woken (or the broker is away): the sweeper will"):
            if fastcache.add(WAKE_KEY, timeout=1):
                current_app.send_task(APPLY_TASK)

    transaction.on_commit(wake)


def inbox_asleep() -> None:
    """An applier found nothing left: a message stored from now on must wake one. The applier
    looks once more after this, so a message stored just before is not left waiting."""
    with outage_tolerated("the applier's wake key stays until it expires"):
        fastcache.delete_many([WAKE_KEY])


# --- Applying -----------------------------------------------------------------------------------
def _claimable(now: datetime) -> Q:
    retry_from = now - settings.INBOX_RETRY_AFTER
    return Q(processed_at__isnull=True, attempts__lt=MAX_ATTEMPTS) & (
        Q(attempts=0) | Q(last_enqueued_at__isnull=True) | Q(last_enqueued_at__lte=retry_from)
    )


def inbox_claim(
    *, kind: str | None = None, message_ids: Sequence[int] | None = None, limit: int = 300
) -> list[Claimed]:
    """Lock up to `limit` unprocessed messages (of one kind, or these ids) that no other
    applier holds, oldest first. Must run inside the transaction that applies them."""
    rows = InboundMessage.objects.filter(_claimable(timezone.now()))
    if kind is not None:
        rows = rows.filter(kind=kind)
    if message_ids is not None:
        rows = rows.filter(AnyOf(F("pk"), list(message_ids)))
    return [
        Claimed(*row)
        for row in rows.select_for_update(skip_locked=True)
        .order_by("pk")
        .values_list("id", "kind", "partner_id", "payment_id", "body")[:limit]
    ]


def inbox_claimable_kinds() -> list[str]:
    """The kinds that have messages waiting for an applier."""
    return sorted(
        InboundMessage.objects.filter(_claimable(timezone.now()))
        .order_by()
        .values_list("kind", flat=True)
        .distinct()
    )


def inbox_mark_applied(messages: Sequence[Claimed], results: Mapping[int, Applied]) -> None:
    """Mark claimed messages processed with what their channel decided (the same transaction).

    Every claimed message must have its result: a channel that forgets one is a bug, and the
    batch fails rather than leave the message to be applied again.
    """
    missing = [message.pk for message in messages if message.pk not in results]
    if missing:
        raise RuntimeError(f"no outcome for inbox message(s) {missing}")
    now = timezone.now()
    bulk_update_rows(
        InboundMessage,
        ("processed_at", "outcome", "outcome_detail", "payment"),
        [
            (
                message.pk,
                now,
                str(results[message.pk].outcome),
                results[message.pk].detail,
                results[message.pk].payment_id or message.payment_id,
            )
            for message in messages
        ],
    )


def inbox_mark_failed(*, message_ids: Sequence[int], error: BaseException) -> None:
    """Count a failed attempt on messages whose batch was rolled back; they wait before the
    next try and are set aside after MAX_ATTEMPTS, each with its error for an agent."""
    InboundMessage.objects.filter(
        AnyOf(F("pk"), list(message_ids)), processed_at__isnull=True
    ).update(
        attempts=F("attempts") + 1,
        outcome=Outcome.ERROR,
        outcome_detail=repr(error)[:2000],
        last_enqueued_at=timezone.now(),
    )


def inbox_finish(
    *, message_id: int, applied: Applied, response: tuple[int, Any] | None = None
) -> None:
    """A synchronous channel applied its message and answered: both kept, in one UPDATE."""
    updates: dict[str, Any] = {
        "processed_at": timezone.now(),
        "outcome": applied.outcome,
        "outcome_detail": applied.detail,
    }
    if applied.payment_id is not None:
        updates["payment"] = applied.payment_id
    if response is not None:
        updates.update(response_status=response[0], response_body=response[1])
    InboundMessage.objects.filter(pk=message_id, processed_at__isnull=True).update(**updates)


def inbox_set_aside(*, limit: int = 20) -> list[InboundMessage]:
    """Messages no applier could apply MAX_ATTEMPTS times: for an agent, with their error."""
    return list(
        InboundMessage.objects.filter(processed_at__isnull=True, attempts__gte=MAX_ATTEMPTS)
        .order_by("received_at")
        .only("id", "kind", "dedupe_key", "attempts", "outcome_detail", "received_at")[:limit]
    )
