"""A production-like portal on loopback, in processes the reliability tests start and stop.

Each fault test gets its own `redis-server` on a free port (never the machine's shared one), a
gunicorn serving the portal with DEBUG off, and Celery workers, all against the test database.
Database connections are named (`application_name`), so a test can cut exactly the web's or the
worker's connections with `pg_terminate_backend` and leave its own alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from django.conf import settings
from django.db import connection

from tests.conftest import wait_until
from tests.sandbox.wallets import wallet_credentials

ROOT = Path(__file__).resolve().parents[2]
VAR = ROOT / "var" / "reliability"
LOGS = VAR / "logs"
FIGURES = VAR / "figures"

# The secrets of this suite's portal processes; the tests sign with the same ones.
SECRET_KEY = "reliability-" + "s3cr3t-" * 8
WEBHOOK_KEY = "reliability-transfer-key-5b1e0c7d9a"
SANDBOX_SECRET = "reliability-sandbox-secret-7F3A9C2E1D"
SANDBOX_TMN = "EVNHT001"
VCB_SECRET = "reliability-vcb-collection-secret-42d1"
WEB_APP = "rel-web"
WORKER_APP = "rel-worker"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(application_name: str) -> str:
    """The test database (the one pytest-django created), with a name for the connection."""
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}?application_name={application_name}"


def portal_env(*, broker_url: str, cache_url: str, application_name: str, **extra: str) -> dict:
    """Production settings (DEBUG off, every secret given) for a portal process of this suite."""
    env = {
        name: value
        for name, value in os.environ.items()
        # Nothing of the developer's own configuration leaks into the processes under test.
        if not name.startswith(("PARTNER_", "DJANGO_", "CELERY_", "SANDBOX_", "INBOX_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="false",
        SECRET_KEY=SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        STATIC_FROM_FINDERS="true",
        LOOKUP_RATE_LIMIT="1000000/s",
        DATABASE_URL=database_url(application_name),
        CONN_MAX_AGE="60",
        CELERY_BROKER_URL=broker_url,
        REDIS_URL=cache_url,
        CACHE_KEY_PREFIX="reliability",
        TRANSFER_WEBHOOK_API_KEY=WEBHOOK_KEY,
        PARTNER_SANDBOX_SECRET=SANDBOX_SECRET,
        PARTNER_SANDBOX_TMN_CODE=SANDBOX_TMN,
        # Nothing listens there: the poller's status checks fail fast and change nothing.
        PARTNER_SANDBOX_PAY_URL="http://127.0.0.1:9/sandbox/paymentv2/vpcpay.html",
        PARTNER_SANDBOX_API_URL="http://127.0.0.1:9/sandbox/merchant_webapi/api/transaction",
        PARTNER_VCB_SECRET=VCB_SECRET,
        # The wallets with the wallet tests' keys (their APIs out of reach, like the sandbox's).
        **{
            f"PARTNER_{code}_{name.upper()}": value
            for code, credentials in wallet_credentials().items()
            for name, value in credentials.items()
        },
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        PORTAL_VAR_DIR=str(VAR / "portal"),
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _log(name: str) -> Any:
    LOGS.mkdir(parents=True, exist_ok=True)
    return (LOGS / f"{name}.log").open("ab")


def _stop(proc: subprocess.Popen | None, *, timeout: float = 20) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# --- Redis ---------------------------------------------------------------------------------------
class RedisServer:
    """A private `redis-server` on a free loopback port, without persistence.

    No persistence is the harder case: whatever sat in the broker when it stops is gone for
    good, and only the inbox (in PostgreSQL) can bring it back.
    """

    def __init__(self, name: str) -> None:
        self.port = free_port()
        self.name = name
        self.dir = VAR / "redis" / f"{name}-{self.port}"
        self.proc: subprocess.Popen | None = None
        self.stops = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no",
            "--dir", str(self.dir), "--protected-mode", "yes",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            cwd=self.dir,
            stdout=_log(f"redis-{self.name}"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        wait_until(lambda: self._pings(client), timeout=10, interval=0.05)

    @staticmethod
    def _pings(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Stop it the hard way (SIGKILL): queued tasks are lost, as in a crash."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.stops += 1

    def close(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- gunicorn ------------------------------------------------------------------------------------
class WebServer:
    """gunicorn serving the portal (gthread workers), as production would."""

    def __init__(self, env: dict[str, str], *, workers: int = 2, threads: int = 8) -> None:
        self.env = env
        self.workers = workers
        self.threads = threads
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return LOGS / f"web-{self.port}.log"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers), "--threads", str(self.threads),
            "--worker-class", "gthread", "--keep-alive", "30", "--timeout", "60",
            "--log-level", "warning",
        ]  # fmt: skip

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self.env,
            stdout=_log(f"web-{self.port}"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._answers, timeout=60, interval=0.2)

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the web server exited; see {self.log_path}")
        try:
            # Any answer will do (the health page is 503 while Redis is down).
            with urllib.request.urlopen(self.url + "/health/", timeout=5):  # noqa: S310 - loopback
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def stop(self) -> None:
        _stop(self.proc)


class DevServer(WebServer):
    """`manage.py runserver`, as `make run` serves the portal (it logs every request line)."""

    def command(self) -> list[str]:
        return [
            sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}",
            "--noreload", "--skip-checks",
        ]  # fmt: skip


# --- Celery --------------------------------------------------------------------------------------
class Worker:
    """A `celery worker` process (prefork) against this suite's Redis and the test database."""

    def __init__(self, env: dict[str, str], *, concurrency: int = 2, name: str = "w") -> None:
        self.env = env
        self.concurrency = concurrency
        self.name = f"rel-{name}-{free_port()}"
        self.proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return LOGS / f"worker-{self.name}.log"

    def start(self) -> None:
        args = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "--loglevel=INFO", "--pool=prefork", f"--concurrency={self.concurrency}",
            "-Q", "callbacks,default,reports",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-n", f"{self.name}@%h",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env,
            stdout=_log(f"worker-{self.name}"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        control = control_app(self.env["CELERY_BROKER_URL"])
        try:
            wait_until(lambda: self._ready(control), timeout=60, interval=0.2)
        finally:
            control.close()

    def _ready(self, control: Any) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited; see {self.log_path}")
        return self._pongs(control)

    def _pongs(self, control: Any) -> bool:
        try:
            replies = control.control.ping(
                destination=[f"{self.name}@{socket.gethostname()}"], timeout=0.5
            )
        except Exception:  # no broker, no answer
            return False
        return bool(replies)

    def alive(self, *, within: float) -> bool:
        """A liveness probe (`celery inspect ping`): does it answer within `within` seconds?"""
        control = control_app(self.env["CELERY_BROKER_URL"])
        deadline = time.monotonic() + within
        try:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    return False
                if self._pongs(control):
                    return True
                time.sleep(0.5)
            return False
        finally:
            control.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pool_pids(self) -> list[int]:
        """The prefork pool's child processes (the ones running tasks)."""
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces; the parent pid is the 2nd field after it.
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.pid:
                children.append(int(entry.name))
        return sorted(children)

    def kill(self) -> None:
        """SIGKILL the whole worker, main process and pool: no goodbye, no requeue."""
        if self.proc:
            # The group too: a main process that already died may have left its pool behind.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        _stop(self.proc, timeout=30)


def control_app(broker_url: str) -> Any:
    """A Celery app of our own, to talk to workers and send tasks on this suite's broker."""
    from celery import Celery

    app = Celery("reliability-control", broker=broker_url, set_as_current=False)
    # Celery prefers the CELERY_BROKER_URL of the environment (the test run's shared broker)
    # to the one given here, except for these two.
    app.conf.broker_read_url = app.conf.broker_write_url = broker_url
    app.conf.broker_connection_timeout = 2
    app.conf.broker_connection_retry_on_startup = False
    app.conf.task_default_queue = "default"
    return app


def send_task(broker_url: str, name: str, *args: Any) -> None:
    app = control_app(broker_url)
    try:
        app.send_task(name, args=args, queue="default", ignore_result=True)
    finally:
        app.close()


# --- The database, from outside Django --------------------------------------------------------------
def raw_connection(**kwargs: Any) -> psycopg.Connection:
    """A connection of the test's own, outside Django (to hold locks, to cut others)."""
    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=db.get("HOST") or "127.0.0.1",
        port=int(db.get("PORT") or 5432),
        user=db.get("USER") or "postgres",
        password=db.get("PASSWORD") or None,
        dbname=db["NAME"],
        application_name="rel-test",
        **kwargs,
    )


def terminate_backends(application_name: str, *, only_waiting: bool = False) -> int:
    """pg_terminate_backend every connection of that name; how many were cut."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s "
            "AND (NOT %s OR wait_event_type = 'Lock')",
            [application_name, only_waiting],
        )
        return int(cursor.fetchone()[0])


def backends_waiting_for_a_lock(application_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s AND wait_event_type = 'Lock'",
            [application_name],
        )
        return int(cursor.fetchone()[0])


# --- The stack -----------------------------------------------------------------------------------
@dataclass
class Stack:
    """Redis, gunicorn and workers of one test; `close()` stops whatever is still running."""

    name: str
    redis: RedisServer
    web: WebServer | None = None
    workers: list[Worker] = field(default_factory=list)

    @property
    def broker_url(self) -> str:
        return self.redis.url(0)

    def env(self, application_name: str, **extra: str) -> dict[str, str]:
        return portal_env(
            broker_url=self.broker_url,
            cache_url=self.redis.url(1),
            application_name=application_name,
            **extra,
        )

    def start_web(self, *, server: type[WebServer] = WebServer, **extra: str) -> WebServer:
        self.web = server(self.env(WEB_APP, **extra))
        self.web.start()
        return self.web

    def start_worker(self, *, concurrency: int = 2, **extra: str) -> Worker:
        # Unprocessed inbox rows are sent again after 2 s instead of 30: the suite stays short.
        extra.setdefault("INBOX_RETRY_AFTER_SECONDS", "2")
        return self._start(self.env(WORKER_APP, **extra), concurrency=concurrency)

    def _start(self, env: dict[str, str], *, concurrency: int) -> Worker:
        worker = Worker(env, concurrency=concurrency, name=f"{self.name}{len(self.workers)}")
        self.workers.append(worker)
        worker.start()
        return worker

    def supervise(self, *, within: float = 20) -> int:
        """What a process supervisor with a liveness probe does in production: a worker that
        does not answer a ping within `within` seconds (it died, or hangs on its way out) is
        killed and started again. Returns how many were restarted."""
        restarted = 0
        for worker in list(self.workers):
            if worker.proc is None or worker.alive(within=within):
                continue
            worker.kill()
            worker.proc = None
            self._start(worker.env, concurrency=worker.concurrency)
            restarted += 1
        return restarted

    def sweep(self) -> None:
        """What beat does every 15 s: send unprocessed inbox rows to a worker again."""
        send_task(self.broker_url, "payments.tasks.sweep_inbox")

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()  # a no-op for one already killed
        if self.web:
            self.web.stop()
        self.redis.close()


@contextlib.contextmanager
def stack(name: str) -> Iterator[Stack]:
    redis_server = RedisServer(name)
    redis_server.start()
    running = Stack(name=name, redis=redis_server)
    try:
        yield running
    finally:
        running.close()
        connection.close()


# --- Figures ---------------------------------------------------------------------------------------
@dataclass
class Figures:
    """What a scenario did and found, written to var/reliability/figures/<name>.json."""

    name: str
    title: str
    started: float = field(default_factory=time.monotonic)
    values: dict[str, Any] = field(default_factory=dict)

    def set(self, **values: Any) -> None:
        self.values.update(values)

    def write(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "title": self.title,
            "seconds": round(time.monotonic() - self.started, 1),
            "recorded_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            **self.values,
        }
        FIGURES.mkdir(parents=True, exist_ok=True)
        (FIGURES / f"{self.name}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False))
        return data
