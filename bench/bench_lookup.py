"""The lookup API under load (wrk, 32 connections) against a bare Django view returning a
constant JSON body under the same gunicorn settings. Target: ≥ 60% of the bare view's
throughput, p99 ≤ 50 ms."""

from __future__ import annotations

import random

from bench.common import VAR, Section, bench_env, gunicorn, median, wrk

WORKERS, THREADS = 4, 1
# Enough different customers that nearly every request in a round misses the lookup cache,
# which is flushed before each round: the worst case, every household a different one.
CODES = 100_000
ROUNDS, SECONDS, CONNECTIONS = 3, 15, 32

SCRIPT = """
local codes = {}
for line in io.lines("%s") do codes[#codes + 1] = line end
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  return wrk.format("GET", "/api/v1/customers/" .. codes[math.random(#codes)] .. "/bills/")
end
"""


def _script() -> str:
    from customers.models import Customer

    rng = random.Random(5)
    ids = Customer.objects.order_by("-id").values_list("id", flat=True)[:1]
    top = ids[0] if ids else 0
    wanted = sorted({rng.randint(1, top) for _ in range(CODES)})
    codes = list(Customer.objects.filter(id__in=wanted).values_list("code", flat=True))
    VAR.mkdir(parents=True, exist_ok=True)
    codes_path = VAR / "lookup-codes.txt"
    codes_path.write_text("\n".join(codes) + "\n")
    script_path = VAR / "lookup.lua"
    script_path.write_text(SCRIPT % codes_path)
    return str(script_path)


def _flush_lookup_cache(env: dict[str, str]) -> None:
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"])
    for key in client.scan_iter("*bills:*", count=10_000):
        client.delete(key)


def run() -> Section:
    section = Section("Lookup API under load (province data)", "make bench (bench/bench_lookup.py)")
    script = _script()
    env = bench_env()
    bare, lookup = [], []
    with gunicorn(workers=WORKERS, threads=THREADS, env=env) as base:
        wrk(base + "/bench/bare/", seconds=3, connections=CONNECTIONS)  # warm up
        wrk(base + "/", seconds=3, connections=CONNECTIONS, script=script)
        for _ in range(ROUNDS):
            bare.append(wrk(base + "/bench/bare/", seconds=SECONDS, connections=CONNECTIONS))
            lookup.append(wrk(base + "/", seconds=SECONDS, connections=CONNECTIONS, script=script))
    bare_rps = median([r.requests_per_second for r in bare])
    lookup_rps = median([r.requests_per_second for r in lookup])
    lookup_p99 = median([r.p99_ms for r in lookup])
    ratio = lookup_rps / bare_rps
    section.add(
        "bare view: requests/s (p50, p99)",
        f"{bare_rps:,.0f} ({median([r.p50_ms for r in bare]):.1f} ms, "
        f"{median([r.p99_ms for r in bare]):.1f} ms)",
        "baseline",
    )
    section.add(
        "GET /api/v1/customers/{code}/bills/: requests/s (p50, p99)",
        f"{lookup_rps:,.0f} ({median([r.p50_ms for r in lookup]):.1f} ms, {lookup_p99:.1f} ms)",
        f"{ratio:.0%} of bare",
        "≥ 60%, p99 ≤ 50 ms",
    )
    errors = sum(r.errors for r in lookup)
    section.add("lookup errors or non-2xx answers", str(errors))
    section.notes.append(
        f"gunicorn gthread, {WORKERS} workers × {THREADS} threads, DEBUG off, PostgreSQL and "
        f"Redis cache; wrk 2 threads, {CONNECTIONS} connections, {ROUNDS} rounds of {SECONDS} s "
        "each, alternating; 100,000 random customers of the province, lookup cache flushed "
        "before each round, so nearly every lookup reads PostgreSQL. wrk, the server and "
        "PostgreSQL share the machine's cores."
    )
    section.passed = ratio >= 0.6 and lookup_p99 <= 50 and errors == 0
    if not section.passed:
        section.notes.append(
            "Why the target is missed, and what would meet it: measured in process through "
            "Django's test client on the province data, the bare view costs 0.44 ms of CPU a "
            "request; a lookup of a customer not in the cache 8.5 ms wall and 4.3 ms of Python "
            "CPU (two indexed queries, the customer then its bills, a Redis round trip for the "
            "rate limit and one to store the answer), and 2.4 ms wall, 2.0 ms CPU from the "
            "cache. Both are CPU-bound on two cores that wrk, the workers and PostgreSQL share, "
            "so the ratio is about the ratio of the work; the p99 is 32 connections queueing "
            "for 4 workers. Already done after profiling: raw SQL instead of model building, "
            "one Redis client per process, the JSON body built directly, a single round trip "
            "for the rate limit. What would meet it: PostgreSQL and Redis on their own cores "
            "(as in production) and answers served from the cache for repeat visits; a lookup "
            "that must read the database cannot match a constant view on two shared cores."
        )
    return section
