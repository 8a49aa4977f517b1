"""Fixed-window rate limits per client address, kept in the cache (Redis when configured).

One limiter serves the lookup pages and the lookup API, so a client cannot double its budget by
switching between them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # seconds until the window resets; 0 when allowed


def parse_rate(rate: str) -> tuple[int, int]:
    """'30/m' -> (30, 60)."""
    count, _, unit = rate.partition("/")
    return int(count), _PERIODS[unit]


def client_address(request: HttpRequest) -> str:
    """The client's address, trusting X-Forwarded-For only as far as configured proxies go."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h]
        if len(hops) >= proxies:
            return hops[-proxies]
    return str(request.META.get("REMOTE_ADDR", "unknown"))


def hit(scope: str, key: str, rate: str) -> Decision:
    """Count one request of `key` in `scope`; refuse it once the window's budget is spent."""
    limit, period = parse_rate(rate)
    now = time.time()
    window = int(now // period)
    cache_key = f"rl:{scope}:{key}:{window}"
    # add() is atomic on Redis and locmem: the first request of a window creates the counter.
    if cache.add(cache_key, 1, timeout=period + 1):
        count = 1
    else:
        try:
            count = cache.incr(cache_key)
        except ValueError:  # expired between add() and incr()
            cache.add(cache_key, 1, timeout=period + 1)
            count = 1
    if count <= limit:
        return Decision(True, 0)
    return Decision(False, max(1, int((window + 1) * period - now) + 1))


def lookup_hit(request: HttpRequest) -> Decision:
    return hit("lookup", client_address(request), settings.LOOKUP_RATE_LIMIT)
