"""Fixed-window rate limits per client address, kept in the cache (Redis when configured).

One limiter serves the lookup pages and the lookup API, so a client cannot double its budget by
switching between them. The budget is `settings.LOOKUP_RATE_LIMIT` ("30/m": 30 per minute).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

from common import fastcache
from common.cache_guard import outage_tolerated

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"(\d+)/(\d*)([smhd])")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # seconds until the window resets; 0 when allowed
    count: int = 0  # requests counted in this window, this one included; 0 without a store


@cache  # read on every lookup; a handful of distinct rates per process
def parse_rate(rate: str) -> tuple[int, int]:
    """'30/m' -> (30, 60); '20/15m' -> (20, 900)."""
    match = _RATE.fullmatch(rate)
    if match is None:
        raise ValueError(f"not a rate: {rate!r}")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * _PERIODS[unit]


def client_address(request: HttpRequest | Any) -> str:
    """The client's address, trusting X-Forwarded-For only as far as configured proxies go."""
    return client_address_in(request.META)


def client_address_in(meta: Mapping[str, Any]) -> str:
    """`client_address` from a request's META, or a WSGI environ (the same keys)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        hops = [h.strip() for h in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if h]
        if len(hops) >= proxies:
            return hops[-proxies]
    return str(meta.get("REMOTE_ADDR", "unknown"))


@dataclass(frozen=True)
class _Window:
    limit: int
    period: int
    key: str
    retry_after: int  # seconds until this window ends


def _window(scope: str, key: str, rate: str) -> _Window:
    limit, period = parse_rate(rate)
    now = time.time()
    window = int(now // period)
    return _Window(
        limit, period, f"rl:{scope}:{key}:{window}", max(1, int((window + 1) * period - now) + 1)
    )


def hit(scope: str, key: str, rate: str) -> Decision:
    """Count one request of `key` in `scope`; refuse it once the window's budget is spent."""
    return hit_and_get(scope, key, rate, cached=None)[0]


def hit_and_get(
    scope: str, key: str, rate: str, *, cached: str | None, raw: bool = False
) -> tuple[Decision, Any]:
    """`hit`, and the cache's JSON value under the key `cached` read in the same round trip
    (None when absent, or when the store is unavailable); with `raw`, the bytes kept there by
    fastcache.set_bytes."""
    current = _window(scope, key, rate)
    counted = None
    # A cache outage must not take the lookup down with it.
    with outage_tolerated("rate limit not counted; letting %s through", scope):
        counted = fastcache.count_in_window(
            current.key, current.period + 1, also_get=cached, raw=raw
        )
    if counted is None:
        return Decision(True, 0), None
    count, value = counted
    if count <= current.limit:
        return Decision(True, 0, count), value
    return Decision(False, current.retry_after, count), value


def spent(scope: str, key: str, rate: str) -> Decision:
    """Whether the window's budget is used up, without counting anything (for limits that count
    only some outcomes, such as failed sign-ins)."""
    current = _window(scope, key, rate)
    count = None
    with outage_tolerated("rate limit not read; letting %s through", scope):
        count = int(fastcache.get_json(current.key) or 0)
    if count is None or count < current.limit:
        return Decision(True, 0)
    return Decision(False, current.retry_after)


def forget(scope: str, key: str, rate: str) -> None:
    """Start the window's count of `key` afresh."""
    with outage_tolerated("rate limit of %s not reset", scope):
        fastcache.delete_many([_window(scope, key, rate).key])


def lookup_hit(request: HttpRequest | Any) -> Decision:
    """Count one customer lookup (bills page, lookup API, a payment start) of this client."""
    return hit("lookup", client_address(request), settings.LOOKUP_RATE_LIMIT)


def lookup_hit_and_get(request: HttpRequest | Any, *, cached: str | None) -> tuple[Decision, Any]:
    """`lookup_hit`, and the cached lookup under the key `cached` read in the same round trip."""
    return lookup_hit_and_get_for(client_address(request), cached=cached)


def lookup_hit_and_get_for(
    address: str, *, cached: str | None, raw: bool = False
) -> tuple[Decision, Any]:
    """`lookup_hit_and_get` for a client address already known (`client_address_in`)."""
    return hit_and_get("lookup", address, settings.LOOKUP_RATE_LIMIT, cached=cached, raw=raw)


class LookupThrottle(BaseThrottle):
    """The lookup budget as a DRF throttle: over it, DRF raises Throttled, which
    common.api.exception_handler answers as 429 `rate_limited` with Retry-After."""

    decision: Decision | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        self.decision = lookup_hit(request)
        return self.decision.allowed

    def wait(self) -> float | None:
        return float(self.decision.retry_after) if self.decision else None
