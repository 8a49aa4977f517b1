"""The benchmark data set: the whole province (467,636 customers, 12 months) in PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.common import PROVINCE_CUSTOMERS, ROOT, bench_env


def ensure_province() -> float | None:
    """Seed the benchmark database unless it already holds the province; returns seconds taken."""
    env = bench_env()
    url = env["DATABASE_URL"]
    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    count = subprocess.run(
        ["psql", url, "-tAc", "SELECT count(*) FROM customers_customer"],
        capture_output=True,
        text=True,
    )
    manage = [sys.executable, "manage.py"]
    if count.returncode == 0 and count.stdout.strip() == str(PROVINCE_CUSTOMERS):
        # Seeded by an earlier run, perhaps of older code: brought up to today's tables.
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        return None
    subprocess.run(
        ["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=True
    )
    subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True)
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    started = time.monotonic()
    subprocess.run(
        [*manage, "seed_demo", "--customers", str(PROVINCE_CUSTOMERS), "--until", "2026-10"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return time.monotonic() - started
