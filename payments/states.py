"""The payment state machine, as data: every status, the sets of them, every allowed move.

`step(status, event)` is the only place a transition is decided; `payments.services` applies
what it says under the payment's row lock. The table covers every (status, event) pair, and a
test walks all of them, so a new status or event cannot be added without deciding each case.

    created ──open──▶ pending ──succeed──▶ succeeded ──reverse──▶ reversed
                        │  │                  │
                        │  └─expire─▶ expired─┤ (late money still settles)
                        │                     └──refund_whole──▶ refunded
                        ├──fail──▶ failed
                        └──cancel─▶ cancelled

A report that contradicts what we recorded (money for a failed payment, a failure for a settled
one) is FLAGGED for an agent, never applied; the same outcome twice is ALREADY done.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from payments.models import Payment

Status = Payment.Status


class Event(enum.StrEnum):
    """What can happen to a payment."""

    OPEN = "open"  # the household (or a counter) started it
    SUCCEED = "succeed"  # a bank proved the money moved
    FAIL = "fail"  # the bank says it did not go through
    CANCEL = "cancel"  # the household or an agent gave up on it
    EXPIRE = "expire"  # its time ran out with no word from the bank
    REFUND_WHOLE = "refund_whole"  # money given back, none of its bills paid by it
    REFUND_PART = "refund_part"  # money for bills paid elsewhere given back, the rest kept
    REVERSE = "reverse"  # the collecting partner took it back the same business day


class Verdict(enum.StrEnum):
    MOVE = "move"  # change to `target` and record the event
    ALREADY = "already"  # the same outcome again: nothing changes
    NOTE = "note"  # recorded on the payment's history, nothing changes
    FLAG = "flag"  # contradicts what we know: recorded and flagged for an agent
    REFUSE = "refuse"  # not allowed: the caller is told (InvalidTransition)


@dataclass(frozen=True)
class Step:
    verdict: Verdict
    target: str | None = None


# Money may still settle these: the bank's word wins over our clock and over a cancel.
SETTLEABLE = frozenset({Status.PENDING, Status.EXPIRED, Status.CANCELLED})
# A bank's success has already reached these: a repeat changes nothing.
SETTLED = frozenset({Status.SUCCEEDED, Status.REFUNDED, Status.REVERSED})
# The money moved and the partner did not take it back: what reconciliation and the books count.
COLLECTED = frozenset({Status.SUCCEEDED, Status.REFUNDED})
# Nothing the household does changes these any more (a bank's late success still settles a
# cancelled payment).
FINAL = frozenset(
    {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.REFUNDED, Status.REVERSED}
)

_MOVE = {target: Step(Verdict.MOVE, target) for target in Status}
_ALREADY, _NOTE = Step(Verdict.ALREADY), Step(Verdict.NOTE)
_FLAG, _REFUSE = Step(Verdict.FLAG), Step(Verdict.REFUSE)

# Every (status, event) pair, row by row. Rows are statuses, so the rules of one status read
# together.
TRANSITIONS: dict[tuple[str, Event], Step] = {
    # created: only ever opened (payments are stored already pending)
    (Status.CREATED, Event.OPEN): _MOVE[Status.PENDING],
    (Status.CREATED, Event.SUCCEED): _REFUSE,
    (Status.CREATED, Event.FAIL): _REFUSE,
    (Status.CREATED, Event.CANCEL): _REFUSE,
    (Status.CREATED, Event.EXPIRE): _REFUSE,
    (Status.CREATED, Event.REFUND_WHOLE): _REFUSE,
    (Status.CREATED, Event.REFUND_PART): _REFUSE,
    (Status.CREATED, Event.REVERSE): _REFUSE,
    # pending: waiting for the bank
    (Status.PENDING, Event.OPEN): _ALREADY,
    (Status.PENDING, Event.SUCCEED): _MOVE[Status.SUCCEEDED],
    (Status.PENDING, Event.FAIL): _MOVE[Status.FAILED],
    (Status.PENDING, Event.CANCEL): _MOVE[Status.CANCELLED],
    (Status.PENDING, Event.EXPIRE): _MOVE[Status.EXPIRED],
    (Status.PENDING, Event.REFUND_WHOLE): _REFUSE,
    (Status.PENDING, Event.REFUND_PART): _REFUSE,
    (Status.PENDING, Event.REVERSE): _REFUSE,
    # expired: our clock ran out, the bank may still say yes or no
    (Status.EXPIRED, Event.OPEN): _REFUSE,
    (Status.EXPIRED, Event.SUCCEED): _MOVE[Status.SUCCEEDED],
    (Status.EXPIRED, Event.FAIL): _MOVE[Status.FAILED],
    (Status.EXPIRED, Event.CANCEL): _REFUSE,
    (Status.EXPIRED, Event.EXPIRE): _ALREADY,
    (Status.EXPIRED, Event.REFUND_WHOLE): _REFUSE,
    (Status.EXPIRED, Event.REFUND_PART): _REFUSE,
    (Status.EXPIRED, Event.REVERSE): _REFUSE,
    # succeeded: the money moved
    (Status.SUCCEEDED, Event.OPEN): _REFUSE,
    (Status.SUCCEEDED, Event.SUCCEED): _ALREADY,
    (Status.SUCCEEDED, Event.FAIL): _FLAG,
    (Status.SUCCEEDED, Event.CANCEL): _REFUSE,
    (Status.SUCCEEDED, Event.EXPIRE): _REFUSE,
    (Status.SUCCEEDED, Event.REFUND_WHOLE): _MOVE[Status.REFUNDED],
    (Status.SUCCEEDED, Event.REFUND_PART): _MOVE[Status.SUCCEEDED],
    (Status.SUCCEEDED, Event.REVERSE): _MOVE[Status.REVERSED],
    # failed: the bank said no
    (Status.FAILED, Event.OPEN): _REFUSE,
    (Status.FAILED, Event.SUCCEED): _FLAG,
    (Status.FAILED, Event.FAIL): _ALREADY,
    (Status.FAILED, Event.CANCEL): _REFUSE,
    (Status.FAILED, Event.EXPIRE): _REFUSE,
    (Status.FAILED, Event.REFUND_WHOLE): _REFUSE,
    (Status.FAILED, Event.REFUND_PART): _REFUSE,
    (Status.FAILED, Event.REVERSE): _REFUSE,
    # cancelled: the household gave up
    (Status.CANCELLED, Event.OPEN): _REFUSE,
    # Money the bank moved after the household gave up still pays the bills (those paid
    # meanwhile leave it to give back), as for an expired payment: it is never left unapplied.
    (Status.CANCELLED, Event.SUCCEED): _MOVE[Status.SUCCEEDED],
    (Status.CANCELLED, Event.FAIL): _NOTE,  # declined after the household gave up: same end
    (Status.CANCELLED, Event.CANCEL): _ALREADY,
    (Status.CANCELLED, Event.EXPIRE): _REFUSE,
    (Status.CANCELLED, Event.REFUND_WHOLE): _REFUSE,
    (Status.CANCELLED, Event.REFUND_PART): _REFUSE,
    (Status.CANCELLED, Event.REVERSE): _REFUSE,
    # refunded: the money went back
    (Status.REFUNDED, Event.OPEN): _REFUSE,
    (Status.REFUNDED, Event.SUCCEED): _ALREADY,
    (Status.REFUNDED, Event.FAIL): _FLAG,
    (Status.REFUNDED, Event.CANCEL): _REFUSE,
    (Status.REFUNDED, Event.EXPIRE): _REFUSE,
    (Status.REFUNDED, Event.REFUND_WHOLE): _REFUSE,
    (Status.REFUNDED, Event.REFUND_PART): _REFUSE,
    (Status.REFUNDED, Event.REVERSE): _REFUSE,
    # reversed: the partner took it back
    (Status.REVERSED, Event.OPEN): _REFUSE,
    (Status.REVERSED, Event.SUCCEED): _ALREADY,
    (Status.REVERSED, Event.FAIL): _FLAG,
    (Status.REVERSED, Event.CANCEL): _REFUSE,
    (Status.REVERSED, Event.EXPIRE): _REFUSE,
    (Status.REVERSED, Event.REFUND_WHOLE): _REFUSE,
    (Status.REVERSED, Event.REFUND_PART): _REFUSE,
    (Status.REVERSED, Event.REVERSE): _ALREADY,
}


def step(status: str, event: Event) -> Step:
    """What `event` does to a payment in `status`."""
    return TRANSITIONS[(Status(status), event)]
