"""Shared pieces of the benchmarks: the environment, server processes, wrk, statistics."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"
PROVINCE_CUSTOMERS = 467_636

SANDBOX_SECRET = "bench-sandbox-secret-0123456789ABCDEF"
SANDBOX_TMN = "EVNHT001"
WEBHOOK_KEY = "bench-transfer-key"


def bench_env(**extra: str) -> dict[str, str]:
    """Production-like settings (DEBUG off) against the benchmark database and broker."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DEBUG="false",
        SECRET_KEY="bench-" + "k" * 60,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        STATIC_FROM_FINDERS="true",
        LOOKUP_RATE_LIMIT="1000000000/s",
        TRANSFER_WEBHOOK_API_KEY=WEBHOOK_KEY,
        PAY_LINK_KEY="bench-pay-link-" + "k" * 40,
        PARTNER_SANDBOX_SECRET=SANDBOX_SECRET,
        PARTNER_SANDBOX_TMN_CODE=SANDBOX_TMN,
        PARTNER_SANDBOX_PAY_URL="http://127.0.0.1:9/sandbox/paymentv2/vpcpay.html",
        PARTNER_SANDBOX_API_URL="http://127.0.0.1:9/sandbox/merchant_webapi/api/transaction",
        LOG_LEVEL="WARNING",
        PORTAL_VAR_DIR=str(VAR),
    )
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench")
    env.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
    env.update(extra)
    return env


def setup_django() -> None:
    for key, value in bench_env().items():
        os.environ.setdefault(key, value)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(args: list[str], *, env: dict[str, str], name: str) -> Iterator[subprocess.Popen]:
    VAR.mkdir(parents=True, exist_ok=True)
    log = (VAR / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


@contextlib.contextmanager
def gunicorn(
    *,
    workers: int,
    threads: int,
    env: dict[str, str],
    app: str = "config.wsgi:application",
    ready: str = "/health/",
) -> Iterator[str]:
    port = free_port()
    args = [
        sys.executable, "-m", "gunicorn", app,
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
        "--worker-class", "gthread", "--backlog", "2048", "--keep-alive", "30",
        "--log-level", "warning",
    ]  # fmt: skip
    with process(args, env=env, name=f"gunicorn-{port}"):
        base = f"http://127.0.0.1:{port}"
        wait_http(base + ready)
        yield base


@contextlib.contextmanager
def celery_worker(
    *, concurrency: int, env: dict[str, str], pool: str = "prefork", include: str = ""
) -> Iterator[None]:
    args = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=WARNING",
        f"--pool={pool}", f"--concurrency={concurrency}", "-Q", "callbacks,default,reports",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"bench-{free_port()}@%h",
    ]  # fmt: skip
    if include:
        args += ["-I", include]
    with process(args, env=env, name="celery"):
        time.sleep(4)  # the pool forks and connects
        yield


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):  # noqa: S310 - loopback
                return
        except Exception:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer")


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(text)
    return float(match[1]) * _UNITS[match[2]]


def wrk(
    url: str, *, connections: int = 32, seconds: int = 15, threads: int = 2, script: str = ""
) -> WrkResult:
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        args += ["-s", script]
    output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.MULTILINE))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests_per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]),
        p50_ms=_ms(latency["50"]),
        p99_ms=_ms(latency["99"]),
        requests=int(re.search(r"(\d+) requests in", output)[1]),
        errors=errors + (int(non_2xx[1]) if non_2xx else 0),
    )


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


@dataclass
class Section:
    """One benchmark's figures for docs/benchmarks.md."""

    title: str
    command: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # what, value, vs, target
    notes: list[str] = field(default_factory=list)
    passed: bool | None = None

    def add(self, what: str, value: str, baseline: str = "", target: str = "") -> None:
        self.rows.append((what, value, baseline, target))


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.0f} GiB"

    def version(*args: str) -> str:
        try:
            return (
                subprocess.run(args, capture_output=True, text=True).stdout.strip().splitlines()[0]
            )
        except (OSError, IndexError):
            return "unknown"

    return {
        "cpu": f"{os.cpu_count()} × {cpu}",
        "memory": memory,
        "python": platform.python_version(),
        "postgresql": version("psql", "--version"),
        "redis": version("redis-server", "--version"),
        "wrk": version("wrk", "--version"),
    }


def free_references(count: int) -> list[str]:
    """New payment references, none of them taken: among the province's 5.5 million payments a
    run of 40,000 random ones meets a taken one about one time in five."""
    from payments import references
    from payments.models import Payment

    chosen: set[str] = set()
    while len(chosen) < count:
        fresh = {references.generate() for _ in range(count - len(chosen))} - chosen
        taken = set(Payment.objects.filter(reference__in=fresh).values_list("reference", flat=True))
        chosen |= fresh - taken
    return sorted(chosen)


def check_books(section: Section) -> None:
    """The books after the run: `check_integrity` must find no breach."""
    import io

    from django.core.management import call_command

    out = io.StringIO()
    try:
        call_command("check_integrity", stdout=out)
        verdict = "clean"
    except SystemExit:
        verdict = "breaches found"
    except Exception as exc:
        verdict = f"breaches found ({exc})"
    section.add("check_integrity after the run", verdict)
    if verdict != "clean":
        section.passed = False
