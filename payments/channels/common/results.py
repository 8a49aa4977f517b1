"""What a partner's report means for the payment, whatever the protocol. No Django."""

from __future__ import annotations

import enum


class Result(enum.StrEnum):
    """What a partner's report means for the payment."""

    SUCCESS = "success"  # the money moved
    FAILED = "failed"  # a definite "no": nothing was taken
    PENDING = "pending"  # not finished yet: ask again later
    REVIEW = "review"  # something a person must look at (suspected fraud, reversal, refund)
