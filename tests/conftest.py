"""Shared fixtures: a fixed cast of people, the partner table, and a real Celery worker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from tests import factories

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _partners(request: pytest.FixtureRequest) -> None:
    """The partner table comes from a data migration; transactional tests flush it, so reload."""
    marker = request.node.get_closest_marker("django_db")
    names = set(request.fixturenames)
    transactional = bool(
        {"transactional_db", "live_server", "celery_worker"} & names
        or (marker and marker.kwargs.get("transaction"))
    )
    if transactional:
        request.getfixturevalue("transactional_db")
    elif marker or "db" in names:
        request.getfixturevalue("db")
    else:
        return
    factories.load_partners()


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    from django.core.cache import cache

    with contextlib.suppress(Exception):
        cache.clear()
    yield


@pytest.fixture
def customer(db: Any) -> Any:
    return factories.CustomerFactory()


@pytest.fixture
def agent(db: Any) -> Any:
    return factories.staff_user("agent")


@pytest.fixture
def supervisor(db: Any) -> Any:
    return factories.staff_user("supervisor")


@pytest.fixture
def finance(db: Any) -> Any:
    return factories.staff_user("finance")


def _worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        user = db.get("USER") or "postgres"
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        env["DATABASE_URL"] = f"postgres://{user}@{host}:{port}/{db['NAME']}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
    env.update(extra or {})
    return env


class WorkerProcess:
    """A real `celery worker` subprocess against the test database and the test broker."""

    def __init__(self, env: dict[str, str], concurrency: int = 2, pool: str = "prefork") -> None:
        self.env = env
        self.concurrency = concurrency
        self.pool = pool
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = ROOT / "var" / f"test-worker-{os.getpid()}.log"

    def start(self) -> None:
        self.log_path.parent.mkdir(exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--loglevel=INFO",
                f"--pool={self.pool}",
                f"--concurrency={self.concurrency}",
                "-Q",
                "callbacks,default,reports",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"test-{os.getpid()}-{time.monotonic_ns()}@%h",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        from portal.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early; see {self.log_path}")
            replies = app.control.ping(timeout=0.5)
            if replies:
                return
        raise RuntimeError(f"worker did not answer a ping; see {self.log_path}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def purge_broker() -> None:
    from portal.celery import app

    with app.connection_for_write() as conn:
        for queue in ("callbacks", "default", "reports"):
            with contextlib.suppress(Exception):
                conn.default_channel.queue_purge(queue)


@pytest.fixture
def celery_worker(transactional_db: Any) -> Iterator[WorkerProcess]:
    """A worker for this test. Needs the real broker (CELERY_BROKER_URL=redis://...)."""
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.fail("integration tests need CELERY_BROKER_URL=redis://... (make test sets it)")
    purge_broker()
    worker = WorkerProcess(_worker_env())
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        connection.close()


def wait_until(predicate: Any, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until `predicate()` is truthy; fail with a clear message on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
