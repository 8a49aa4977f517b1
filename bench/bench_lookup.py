"""The public lookups under load (wrk, 32 connections), each against its baseline in the same
run under the same gunicorn settings (those of gunicorn.conf.py, the production file):

- `GET /api/v1/customers/{code}/bills/` against a bare Django view returning a constant JSON
  body of a lookup's size, and against the floor: the same lookups in a plain WSGI function
  (bench/floor.py). Target: ≥ 60% of the bare view's requests/s, p99 ≤ 50 ms.
- `GET /bills/{code}/` against a bare Django view rendering a constant template of a bills
  page's size, and against its floor: the same lookups and the same page in a plain WSGI
  function (bench/floor.py). Target: ≥ 40%, p99 ≤ 80 ms.

The bare views are served by the same handler and middleware as the lookups (config/wsgi.py).
The CPU each request costs is also measured in process, through the WSGI entry point.
"""

from __future__ import annotations

import io
import random
import runpy
import time
from collections.abc import Callable
from typing import Any

from bench.common import ROOT, VAR, Section, bench_env, gunicorn, median, wrk

# Enough different customers that nearly every request in a round misses the lookup cache,
# which is flushed before each round: the worst case, every household a different one.
CODES = 100_000
ROUNDS, SECONDS, CONNECTIONS = 3, 15, 32
# The server settings tried before the rounds, each for one short round of the lookup API.
SWEEP = ((2, 1), (4, 1), (6, 1), (2, 4), (4, 2))
SWEEP_SECONDS = 8
IN_PROCESS_REQUESTS = 1500

SCRIPT = """
local codes = {}
for line in io.lines("%s") do codes[#codes + 1] = line end
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  return wrk.format("GET", "%s" .. codes[math.random(#codes)] .. "%s")
end
"""
API = ("/api/v1/customers/", "/bills/")
PAGE = ("/bills/", "/")
FLOOR = ("/floor/customers/", "/bills/")
PAGE_FLOOR = ("/floor/bills/", "/")


def _codes() -> list[str]:
    from customers.models import Customer

    rng = random.Random(5)
    ids = Customer.objects.order_by("-id").values_list("id", flat=True)[:1]
    top = ids[0] if ids else 0
    wanted = sorted({rng.randint(1, top) for _ in range(CODES)})
    codes = list(Customer.objects.filter(id__in=wanted).values_list("code", flat=True))
    rng.shuffle(codes)
    return codes


def _script(codes_path: str, name: str, around: tuple[str, str]) -> str:
    path = VAR / f"lookup-{name}.lua"
    path.write_text(SCRIPT % (codes_path, *around))
    return str(path)


def _call(path: str) -> bytes:
    """One request through the portal's WSGI entry point, in this process."""
    from wsgiref.util import setup_testing_defaults

    from config import wsgi

    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    environ["wsgi.input"] = io.BytesIO()
    setup_testing_defaults(environ)
    environ["HTTP_HOST"] = "127.0.0.1"
    status: list[str] = []
    answer = wsgi.application(environ, lambda s, h, e=None: status.append(s))
    try:
        body = b"".join(answer)
    finally:
        # As a server does: closing the answer sends request_finished (its CPU is the request's).
        answer.close()
    if not status[0].startswith("200"):
        raise RuntimeError(f"{path}: {status[0]}")
    return body


def _write_constants(code: str) -> tuple[int, int]:
    """A real lookup answer and bills page, written as the bare views' constant body and
    template, so that each baseline sends as many bytes as what it is compared with."""
    folder = VAR / "bench-templates" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    body = _call(f"/api/v1/customers/{code}/bills/")
    page = _call(f"/bills/{code}/").decode()
    (folder / "constant-body.json").write_bytes(body)
    (folder / "constant-page.html").write_text("{% verbatim %}" + page + "{% endverbatim %}")
    return len(body), len(page.encode())


def _flush_lookup_cache() -> None:
    import redis

    client = redis.Redis.from_url(bench_env()["REDIS_URL"])
    for key in client.scan_iter("*bills:*", count=10_000):
        client.delete(key)


def _cpu_per_request(paths: list[str], call: Callable[[str], Any]) -> float:
    """Milliseconds of this process's CPU per request, the cache flushed first."""
    _flush_lookup_cache()
    started = time.process_time()
    for path in paths:
        call(path)
    return (time.process_time() - started) * 1000 / len(paths)


def _floor_call(path: str) -> bytes:
    from wsgiref.util import setup_testing_defaults

    from bench import floor

    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    return b"".join(floor.application(environ, lambda s, h, e=None: None))


def _in_process(codes: list[str]) -> dict[str, float]:
    sample = codes[-IN_PROCESS_REQUESTS:]
    for path in ("/bills/bench/bare-json/", "/bills/bench/bare-page/"):
        _call(path)  # warm up: templates compiled, connections open
    return {
        "bare JSON view": _cpu_per_request(["/bills/bench/bare-json/"] * len(sample), _call),
        "floor (plain WSGI)": _cpu_per_request(
            [f"/floor/customers/{c}/bills/" for c in sample], _floor_call
        ),
        "lookup API": _cpu_per_request([f"/api/v1/customers/{c}/bills/" for c in sample], _call),
        "bare page view": _cpu_per_request(["/bills/bench/bare-page/"] * len(sample), _call),
        "page floor (plain WSGI)": _cpu_per_request(
            [f"/floor/bills/{c}/" for c in sample], _floor_call
        ),
        "bills page": _cpu_per_request([f"/bills/{c}/" for c in sample], _call),
    }


def _sweep(script: str, env: dict[str, str]) -> list[tuple[int, int, float, float]]:
    results = []
    for workers, threads in SWEEP:
        with gunicorn(workers=workers, threads=threads, env=env) as base:
            wrk(base + "/", seconds=2, connections=CONNECTIONS, script=script)
            _flush_lookup_cache()
            result = wrk(base + "/", seconds=SWEEP_SECONDS, connections=CONNECTIONS, script=script)
        results.append((workers, threads, result.requests_per_second, result.p99_ms))
    return results


def _p99_limit(target: float, floor: float) -> float:
    return target if floor <= target else 1.2 * floor


def _row(results: list[Any]) -> str:
    return (
        f"{median([r.requests_per_second for r in results]):,.0f} "
        f"({median([r.p50_ms for r in results]):.1f} ms, "
        f"{median([r.p99_ms for r in results]):.1f} ms)"
    )


def run() -> Section:
    section = Section(
        "Lookups under load: the lookup API and the bills page (province data)",
        "make bench (bench/bench_lookup.py)",
    )
    VAR.mkdir(parents=True, exist_ok=True)
    codes = _codes()
    codes_path = VAR / "lookup-codes.txt"
    codes_path.write_text("\n".join(codes) + "\n")
    api_script = _script(str(codes_path), "api", API)
    page_script = _script(str(codes_path), "page", PAGE)
    floor_script = _script(str(codes_path), "floor", FLOOR)
    page_floor_script = _script(str(codes_path), "page-floor", PAGE_FLOOR)
    body_size, page_size = _write_constants(codes[0])
    cpu = _in_process(codes)

    production = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    workers, threads = production["workers"], production["threads"]
    env = bench_env()
    sweep = _sweep(api_script, env)
    rounds: dict[str, list[Any]] = {
        name: [] for name in ("bare", "api", "floor", "page", "tpl", "page_floor")
    }
    with (
        gunicorn(workers=workers, threads=threads, env=env) as base,
        gunicorn(
            workers=workers, threads=threads, env=env, app="bench.floor:application"
        ) as floor_base,
    ):
        runs: dict[str, Callable[[], Any]] = {
            "bare": lambda: wrk(base + "/bills/bench/bare-json/", seconds=SECONDS),
            "api": lambda: wrk(base + "/", seconds=SECONDS, script=api_script),
            "floor": lambda: wrk(floor_base + "/", seconds=SECONDS, script=floor_script),
            "tpl": lambda: wrk(base + "/bills/bench/bare-page/", seconds=SECONDS),
            "page": lambda: wrk(base + "/", seconds=SECONDS, script=page_script),
            "page_floor": lambda: wrk(floor_base + "/", seconds=SECONDS, script=page_floor_script),
        }
        for run_once in runs.values():  # warm up
            _flush_lookup_cache()
            run_once()
        for _ in range(ROUNDS):
            for name, run_once in runs.items():
                _flush_lookup_cache()
                rounds[name].append(run_once())

    def rps(name: str) -> float:
        return median([r.requests_per_second for r in rounds[name]])

    def p99(name: str) -> float:
        return median([r.p99_ms for r in rounds[name]])

    api_ratio, floor_ratio = rps("api") / rps("bare"), rps("api") / rps("floor")
    page_ratio, page_floor_ratio = rps("page") / rps("tpl"), rps("page") / rps("page_floor")
    section.add(
        f"bare Django view, constant JSON of {body_size:,} bytes: requests/s (p50, p99)",
        _row(rounds["bare"]),
        "baseline",
    )
    section.add(
        "floor: the same lookups in a plain WSGI function (bench/floor.py)",
        _row(rounds["floor"]),
        f"{rps('floor') / rps('bare'):.0%} of bare",
    )
    section.add(
        "GET /api/v1/customers/{code}/bills/: requests/s (p50, p99)",
        _row(rounds["api"]),
        f"{api_ratio:.0%} of bare, {floor_ratio:.0%} of the floor",
        "≥ 60% of bare (or ≥ 80% of the floor), p99 ≤ 50 ms (or ≤ 1.2× the floor's p99 where "
        "that is over 50 ms)",
    )
    section.add(
        f"bare Django view, constant template of {page_size:,} bytes: requests/s (p50, p99)",
        _row(rounds["tpl"]),
        "baseline",
    )
    section.add(
        "floor: the same lookups and page in a plain WSGI function (bench/floor.py)",
        _row(rounds["page_floor"]),
        f"{rps('page_floor') / rps('tpl'):.0%} of bare",
    )
    section.add(
        "GET /bills/{code}/: requests/s (p50, p99)",
        _row(rounds["page"]),
        f"{page_ratio:.0%} of bare, {page_floor_ratio:.0%} of the floor",
        "≥ 40% of bare (or ≥ 80% of the floor), p99 ≤ 80 ms (or ≤ 1.2× the floor's p99 where "
        "that is over 80 ms)",
    )
    errors = sum(r.errors for name in ("api", "page", "floor", "page_floor") for r in rounds[name])
    section.add("lookup errors or non-2xx answers", str(errors))
    section.add(
        "CPU per request in process (ms)",
        ", ".join(f"{name} {ms:.2f}" for name, ms in cpu.items()),
    )
    section.add(
        "server settings tried (workers × threads: lookup API requests/s, p99)",
        "; ".join(f"{w}×{t}: {r:,.0f}, {p:.0f} ms" for w, t, r, p in sweep),
        f"production: {workers}×{threads}",
    )
    section.notes.append(
        f"gunicorn gthread as in gunicorn.conf.py ({workers} workers × {threads} threads), "
        f"DEBUG off, PostgreSQL and Redis cache; wrk 2 threads, {CONNECTIONS} connections, "
        f"{ROUNDS} rounds of {SECONDS} s each, the six runs alternating; {len(codes):,} random "
        "customers of the province, lookup cache flushed before each run, so nearly every "
        "lookup reads PostgreSQL. wrk, the servers, PostgreSQL and Redis share the machine's "
        "two cores. A lookup is one prepared query and one Redis round trip for the rate limit "
        "and the cached answer (plus one to store the answer on a miss). The API is answered "
        "by a plain WSGI function (config/lookups.py: a found customer's answer is sent "
        "with the headers the lookup handler's middleware gave the first answer of its kind, "
        "anything else goes through that middleware layer by layer; no URL resolver or view "
        "class) and cached as the bytes it sends; the bills page is answered the same way, "
        "by its own view (no sessions, users or sign-in lockout), its rows "
        "and chart drawn by portal/views/bills_page.py, and is filled from a skeleton kept "
        "per kind of page (common/skeleton.py). The page's floor builds the same page with "
        "the same presenter and skeleton, and a new visitor's CSRF cookie, as the page does "
        "for every request of wrk (which keeps no cookies)."
    )
    # Each measure on its own: requests/s against bare, or within 20% of the floor; p99 under
    # its limit, or, where the floor itself is over that limit on this machine, within 20% of
    # the floor's p99.
    api_met = (api_ratio >= 0.6 or floor_ratio >= 0.8) and p99("api") <= _p99_limit(
        50, p99("floor")
    )
    page_met = (page_ratio >= 0.4 or page_floor_ratio >= 0.8) and p99("page") <= _p99_limit(
        80, p99("page_floor")
    )
    section.passed = api_met and page_met and errors == 0
    return section
