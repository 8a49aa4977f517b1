"""The applier: the one way a stored bank message changes anything.

It claims a batch of stored messages of one kind (`inbox.inbox_claim`, `FOR UPDATE SKIP
LOCKED`: appliers in parallel never take the same row), has the kind's channel read and decide
them all (`CHANNELS`), and marks them applied, in one transaction. A single message is a batch
of one; a 100,000-line statement is batches of thousands; there is no other path.

A batch that fails is rolled back whole and split in two, each half applied on its own, down to
the one message that fails: that message alone is counted as a failed attempt, with its error,
and waits (`inbox.inbox_mark_failed`); the others are applied. A worker killed mid-batch leaves
nothing half-applied: its transaction never commits, its row locks go with its connection, and
the next applier claims the same messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.db import transaction
from django.db.models import F

from payments import inbox
from payments.bulk import AnyOf
from payments.channels import registry
from payments.channels.statements import lines
from payments.channels.transfers import notifications
from payments.inbox import Applied, Arriving, Claimed
from payments.models import InboundMessage

logger = logging.getLogger(__name__)

Kind = InboundMessage.Kind
Outcome = InboundMessage.Outcome

# How long an applier lets messages gather after a round that was not full.
GATHER_SECONDS = 0.25

# Messages per transaction: big enough that a burst costs a few queries per hundred payments,
# small enough that a batch's locks are held for well under a second.
BATCH = 300

Channel = Callable[[Sequence[Claimed], Mapping[int, Any]], dict[int, Applied]]

CHANNELS: dict[str, Channel] = {
    # Every payment page's (VNPay, MoMo, ZaloPay): each read by its partner's protocol.
    Kind.IPN: lambda messages, _parsed: registry.apply_reports(messages),
    Kind.QUERY: lambda messages, _parsed: registry.apply_reports(messages),
    Kind.TRANSFER: notifications.apply,
    Kind.STATEMENT: lines.apply,
}


def _apply_claimed(messages: Sequence[Claimed], parsed: Mapping[int, Any]) -> dict[int, Applied]:
    channel = CHANNELS.get(messages[0].kind)
    if channel is None:
        return {
            message.pk: Applied(Outcome.NO_HANDLER, "kept for the record") for message in messages
        }
    return channel(messages, parsed)


def _batch(
    *, kind: str | None, message_ids: Sequence[int] | None, limit: int, parsed: Mapping[int, Any]
) -> tuple[dict[int, Outcome], list[int]]:
    """One transaction: claim, decide, mark. Returns (outcomes, the ids claimed)."""
    claimed: list[int] = []
    try:
        with transaction.atomic():
            messages = inbox.inbox_claim(kind=kind, message_ids=message_ids, limit=limit)
            claimed = [message.pk for message in messages]
            if not messages:
                return {}, []
            results = _apply_claimed(messages, parsed)
            inbox.inbox_mark_applied(messages, results)
    except Exception as exc:
        if not claimed:
            raise
        raise _BatchFailed(claimed, exc) from exc
    return {pk: results[pk].outcome for pk in claimed}, claimed


class _BatchFailed(Exception):
    def __init__(self, claimed: list[int], error: BaseException) -> None:
        super().__init__(repr(error))
        self.claimed = claimed
        self.error = error


def _apply_ids(message_ids: Sequence[int], parsed: Mapping[int, Any]) -> dict[int, Outcome]:
    """Apply these messages (of one kind), splitting a failing batch down to its culprit."""
    try:
        outcomes, _claimed = _batch(
            kind=None, message_ids=message_ids, limit=len(message_ids), parsed=parsed
        )
        return outcomes
    except _BatchFailed as failed:
        return _split(failed, parsed)


def _split(failed: _BatchFailed, parsed: Mapping[int, Any]) -> dict[int, Outcome]:
    ids = failed.claimed
    if len(ids) == 1:
        logger.warning("inbox message %s not applied: %r", ids[0], failed.error)
        inbox.inbox_mark_failed(message_ids=ids, error=failed.error)
        return {ids[0]: Outcome.ERROR}
    half = len(ids) // 2
    return {**_apply_ids(ids[:half], parsed), **_apply_ids(ids[half:], parsed)}


def apply(
    *, message_ids: Sequence[int], parsed: Mapping[int, Any] | None = None, batch: int = BATCH
) -> dict[int, Outcome]:
    """Apply these stored messages, `batch` at a time, each kind on its own; returns the outcome
    of each one applied now (a message another applier holds, or applied before, is left out).

    `parsed` are the messages' contents as the caller already read them from the same bodies
    (the statement import), so they are not read twice.
    """
    kinds = (
        dict(
            InboundMessage.objects.filter(AnyOf(F("pk"), list(message_ids))).values_list(
                "pk", "kind"
            )
        )
        if len(message_ids) > 1
        else None
    )
    groups: dict[str, list[int]] = {}
    for message_id in message_ids:
        kind = kinds.get(message_id, "") if kinds is not None else ""
        groups.setdefault(kind, []).append(message_id)
    outcomes: dict[int, Outcome] = {}
    for ids in groups.values():
        for start in range(0, len(ids), batch):
            outcomes.update(_apply_ids(ids[start : start + batch], parsed or {}))
    return outcomes


def apply_arriving(
    *, kind: str, messages: Sequence[Arriving], parsed: Sequence[Any] | None = None
) -> dict[str, Outcome]:
    """Apply messages as they arrive and store them applied, in one transaction, so each row is
    written once (a statement's lines); returns each one's outcome by its key.

    The messages are held as if claimed (`inbox.inbox_take_arriving`), decided by their
    channel like any batch and written with their outcomes (`inbox.inbox_store_applied`). The
    caller holds the kind's turn (`inbox.inbox_turn`) and found none of the keys stored
    (`inbox.inbox_stored`). `parsed` are their contents as the caller already read them, in
    the same order. A batch that fails is split like any other; a message that fails alone is
    stored unapplied with its error, and the appliers retry it.
    """
    if not messages:
        return {}
    try:
        with transaction.atomic():
            claimed = inbox.inbox_take_arriving(kind=kind, messages=messages)
            given = (
                {held.pk: content for held, content in zip(claimed, parsed, strict=True)}
                if parsed is not None
                else {}
            )
            results = _apply_claimed(claimed, given)
            inbox.inbox_store_applied(messages=messages, claimed=claimed, results=results)
    except Exception as exc:  # noqa: BLE001 - any failure splits the batch down to its culprit
        if len(messages) == 1:
            logger.warning("%s not applied as it arrived: %r", messages[0].dedupe_key, exc)
            inbox.inbox_store_failed(kind=kind, message=messages[0], error=exc)
            return {messages[0].dedupe_key: Outcome.ERROR}
        half = len(messages) // 2
        return {
            **apply_arriving(
                kind=kind, messages=messages[:half], parsed=parsed[:half] if parsed else None
            ),
            **apply_arriving(
                kind=kind, messages=messages[half:], parsed=parsed[half:] if parsed else None
            ),
        }
    return {
        message.dedupe_key: results[held.pk].outcome
        for message, held in zip(messages, claimed, strict=True)
    }


def apply_waiting(*, limit: int = BATCH, rounds: int = 1000) -> int:
    """Drain the inbox: claim and apply batches of waiting messages, kind by kind, until none
    is left (or `rounds` batches were applied); returns how many messages were applied.

    While it runs, callbacks wake no other applier (`inbox.inbox_wake`): this one takes their
    messages in its next round. When a round finds nothing it says so (`inbox.inbox_asleep`)
    and looks once more, so a message stored meanwhile is never left without an applier.
    """
    applied = 0
    asleep = False
    for _round in range(rounds):
        done = 0
        for kind in inbox.inbox_claimable_kinds():
            try:
                outcomes, _claimed = _batch(kind=kind, message_ids=None, limit=limit, parsed={})
            except _BatchFailed as failed:
                outcomes = _split(failed, {})
            done += len(outcomes)
        applied += done
        if done:
            asleep = False
            if done < limit:
                # Messages come one at a time: a moment's wait lets the next round take many,
                # which costs far less than many rounds of a few (a quarter of a second of
                # latency at most).
                time.sleep(GATHER_SECONDS)
        elif asleep:
            break
        else:
            inbox.inbox_asleep()
            asleep = True
    return applied


def apply_one(message_id: int) -> str:
    """Apply one stored message (a batch of one); its outcome, also when it was applied before
    (or by another applier meanwhile)."""
    outcomes = apply(message_ids=[message_id])
    if message_id in outcomes:
        return str(outcomes[message_id])
    return str(InboundMessage.objects.values_list("outcome", flat=True).get(pk=message_id))
