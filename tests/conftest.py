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

import hypothesis
import pytest
from django.conf import settings
from django.db import connection

from tests import factories

ROOT = Path(__file__).resolve().parent.parent

# The test machine is shared and noisy: speed is the benchmarks' concern, so no property test
# fails because one example, or drawing it, was slow.
hypothesis.settings.register_profile(
    "portal",
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.load_profile("portal")


@pytest.fixture(autouse=True)
def _partners(request: pytest.FixtureRequest) -> None:
    """Partners and the console's role groups come from data migrations; transactional tests
    flush every table (also for later tests, with --reuse-db), so load them again."""
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
    factories.load_roles()


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    from django.core.cache import cache

    from portal.views.lookup import partner_list

    with contextlib.suppress(Exception):
        cache.clear()
    partner_list.forget()  # kept by the process, not the cache: each test loads its partners
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
                "config",
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
        try:
            self._wait_ready()
        except BaseException:
            self.kill()  # a worker that failed to start must not outlive the test
            raise

    def _wait_ready(self, timeout: float = 30) -> None:
        from config.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early; see {self.log_path}")
            replies = app.control.ping(timeout=0.5)
            if replies:
                return
        raise RuntimeError(f"worker did not answer a ping; see {self.log_path}")

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The worker (all its processes) stopped, as if busy elsewhere, for the length of the
        block: what it was asked to do meanwhile waits in the broker, and runs after."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(self.proc.pid, signal.SIGCONT)

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


def mailing_worker(mail_dir: Path) -> WorkerProcess:
    """A worker (not started) whose e-mails are written as files into `mail_dir`."""
    return WorkerProcess(
        _worker_env(
            {
                "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                "EMAIL_FILE_PATH": str(mail_dir),
            }
        )
    )


def purge_broker() -> None:
    from config.celery import app

    with app.connection_for_write() as conn:
        for queue in ("callbacks", "default", "reports"):
            with contextlib.suppress(Exception):
                conn.default_channel.queue_purge(queue)


@pytest.fixture
def broker_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the real Celery app at a port where no broker listens, then put it back."""
    from config.celery import app

    dead = "redis://127.0.0.1:1/0"

    def forget_pools() -> None:
        # Forget the app's cached pools (not close them: kombu's registry shares them), so the
        # next publish connects to the broker URL now configured.
        app._pool = None
        app.amqp._producer_pool = None

    # The raw settings, not the properties: `broker_write_url` resolves to `broker_url` (and that
    # to the environment) when read, and a resolved value put back would outlive this test and
    # leave the later ones publishing to the dead port.
    saved = {key: app.conf.get(key) for key in ("broker_url", "broker_write_url")}
    # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", dead)
    app.conf.update(broker_url=dead, broker_write_url=dead)
    forget_pools()
    yield
    monkeypatch.undo()
    app.conf.update(saved)
    forget_pools()


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


# --- Browser tests ------------------------------------------------------------------------------
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# Reviewers' screenshots are rewritten only on request (`make screenshots`), so an ordinary test
# run leaves the committed ones alone.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS")
    else ROOT / "var" / "screenshots"
)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright; never a downloaded browser."""
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # around it are still synchronous and safe.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    """A fresh phone-sized page; `page.goto(live_server.url + path)` to start."""
    context = browser.new_context(viewport=PHONE, locale="vi-VN")
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def axe_violations(
    tab: Any, tags: tuple[str, ...] = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
) -> list[dict[str, Any]]:
    """Run axe-core (from the npm registry, `npm ci`) in the page; returns its violations."""
    source = (ROOT / "node_modules" / "axe-core" / "axe.min.js").read_text()
    # Evaluated through the DevTools protocol: the page's own CSP rightly refuses inline scripts.
    tab.evaluate(f"() => {{ {source}\n; window.axe = axe; }}")
    result = tab.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", list(tags)
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in result["violations"]
    ]


def screenshot(tab: Any, name: str, full_page: bool = True) -> Path:
    """Save a screenshot under docs/screenshots/ for reviewers."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=full_page)
    return path
