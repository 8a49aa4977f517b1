"""The embedded default: with no DATABASE_URL or broker configured the portal runs on SQLite and a
file-system Celery broker, so a new user on a bare machine sees it work."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "docs" / "samples" / "bills-sample.csv"

pytestmark = pytest.mark.slow
HEALTH_TOKEN = "embedded-health-token-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback only
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(  # noqa: S310 - loopback only
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def test_it_migrates_imports_serves_and_runs_tasks_without_postgres_or_redis(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        PORTAL_VAR_DIR=str(tmp_path),
        CELERY_BROKER_URL="",
        DJANGO_SETTINGS_MODULE="config.settings",
        PAYMENT_TTL_MINUTES="0",
        HEALTH_TOKEN=HEALTH_TOKEN,
    )
    manage = [sys.executable, "manage.py"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*manage, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
        )

    assert run("migrate", "--noinput").returncode == 0
    assert (tmp_path / "db.sqlite3").exists()
    # A copy: the import writes its report of refused lines beside the file it reads.
    sample = tmp_path / SAMPLE.name
    shutil.copyfile(SAMPLE, sample)
    imported = run("import_bills", str(sample))
    assert imported.returncode == 1  # the sample has one bad row, reported by line
    assert "line 6: invalid customer code" in imported.stderr
    assert "4 bills created" in imported.stdout
    assert (tmp_path / "bills-sample.errors.csv").read_text().startswith("line,reason\n6,")

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env["PORTAL_BASE_URL"] = base
    log = (tmp_path / "processes.log").open("w")
    web = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo",
         "-Q", "callbacks,default,reports", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline:
            try:
                status, _ = _get(base + "/health/")
                break
            except OSError:
                time.sleep(0.3)
        assert status == 200
        status, body = _get(base + "/")
        assert status == 200 and b'name="code"' in body
        status, body = _get(base + "/bills/PA14HT9000001/")
        assert status == 200 and "Nguyễn V** H**".encode() in body
        assert json.loads(_get(base + "/health/")[1]) == {"status": "ok"}
        health = json.loads(_get(base + "/health/", {"Authorization": f"Bearer {HEALTH_TOKEN}"})[1])
        assert health["database"]["detail"] == "sqlite"
        assert health["broker"]["ok"] is True

        # A task through the file-system broker, run by the real worker, on SQLite.
        payment = _post_json(
            base + "/api/v1/payments/", {"customer_code": "PA14DT9000002", "method": "vietqr"}
        )
        called = run(
            "shell", "-c", "from payments.tasks import expire_stale_payments as t; t.delay()"
        )
        assert called.returncode == 0, called.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            current = json.loads(_get(f"{base}/api/v1/payments/{payment['id']}/")[1])
            if current["status"] == "expired":
                break
            time.sleep(0.5)
        assert current["status"] == "expired"

        # The household looks at the bills page (the web caches it) before the money comes.
        status, body = _get(base + "/bills/PA14DT9000002/")
        assert status == 200 and "Tất cả hóa đơn đã được thanh toán" not in body.decode()

        # Late money on a statement still pays it; its inbox rows take ids SQLite reserved.
        lines = tmp_path / "statement.csv"
        lines.write_text(
            "transaction_id,account_number,transaction_date,amount,content\n"
            f"FT1,0011004321987,2026-11-27 09:15:00,{payment['amount']},"
            f"IBFT {payment['reference']} tien dien\n"
            "FT2,0011004321987,2026-11-27 09:16:00,5000,someone else\n",
            encoding="utf-8",
        )
        matched = run("import_statement", str(lines))
        assert matched.returncode == 0, matched.stderr
        assert "1  matched to a payment after it expired" in matched.stdout
        again = run("import_statement", str(lines))
        assert "2  already imported before" in again.stdout
        current = json.loads(_get(f"{base}/api/v1/payments/{payment['id']}/")[1])
        assert current["status"] == "succeeded"
        # Settled in another process, shown paid by the web at once: one cache for all.
        status, body = _get(base + "/bills/PA14DT9000002/")
        assert status == 200 and "Tất cả hóa đơn đã được thanh toán" in body.decode()
    finally:
        for process in (web, worker):
            process.terminate()
            process.wait(timeout=20)
        log.close()
