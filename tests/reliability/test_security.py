"""Security settings: production checks, refusals at start-up, headers, cookies, lockout, logs.

Production settings are exercised in subprocesses with DEBUG off and a controlled environment,
as a server would start; everything else runs against the test settings.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from common.logging import MaskSensitiveFilter, mask_sensitive
from tests.conftest import wait_until
from tests.factories import customer_with_bills, staff_user
from tests.reliability import books, support, traffic
from tests.sandbox.support import redirect_payment

ROOT = support.ROOT
PASSWORD = "S3cure-pass-2026"
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "prod-" + "x7Kq9" * 12,
    "ALLOWED_HOSTS": "portal.example.vn,testserver",
    "TRANSFER_WEBHOOK_API_KEY": "prod-webhook-key-2b9f61c0d4e8",
    # Empty, not absent: a developer's .env must not fill them in behind the test's back.
    "PARTNER_SANDBOX_SECRET": "",
    "SANDBOX_BANK_ENABLED": "",
}


def _production_env(tmp_path: Path, **changes: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PORTAL_VAR_DIR": str(tmp_path / "var"),
        "STATIC_FROM_FINDERS": "true",
        "DATABASE_URL": support.database_url("rel-probe"),
        **PRODUCTION,
    }
    env.update(changes)
    return {name: value for name, value in env.items() if value is not None}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


# --- Production settings ------------------------------------------------------------------------
def test_production_settings_pass_check_deploy_with_no_warnings(tmp_path):
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production_env(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": "short-key"}, "SECRET_KEY must be set"),
        (
            {"SECRET_KEY": "dev-only-insecure-key-change-me-0123456789-abcdefghijklmnopqrstuvwxyz"},
            "SECRET_KEY is a development or published value",
        ),
        # Nothing configured at all: production, and no secret key to run with.
        ({"DEBUG": None, "SECRET_KEY": None}, "SECRET_KEY must be set"),
        ({"TRANSFER_WEBHOOK_API_KEY": ""}, "TRANSFER_WEBHOOK_API_KEY must be set"),
        # The values .env.example carries for development, copied into production.
        (
            {"TRANSFER_WEBHOOK_API_KEY": "dev-transfer-webhook-key"},
            "TRANSFER_WEBHOOK_API_KEY is a development or published value",
        ),
        (
            {"PARTNER_SANDBOX_SECRET": "dev-sandbox-secret-0123456789ABCDEF"},
            "PARTNER_SANDBOX_SECRET is a development or published value",
        ),
        # A secret a document shows as an example is public, however random it looks.
        (
            {"PARTNER_VCB_SECRET": "vcb-collection-secret-0123456789abcdef"},
            "PARTNER_VCB_SECRET is a development or published value",
        ),
        ({"PARTNER_VCB_SECRET": "123456"}, "PARTNER_VCB_SECRET must be"),
        # A wallet's keys are secrets like any other: long, and never `make run`'s.
        ({"PARTNER_ZALOPAY_KEY2": "1234567"}, "PARTNER_ZALOPAY_KEY2 must be"),
        (
            {"PARTNER_MOMO_SECRET": "dev-momo-secret-key-0123456789abcdef"},
            "PARTNER_MOMO_SECRET is a development or published value",
        ),
        (
            {"PARTNER_ZALOPAY_KEY1": "dev-zalopay-key1-0123456789abcdef"},
            "PARTNER_ZALOPAY_KEY1 is a development or published value",
        ),
        ({"SANDBOX_BANK_ENABLED": "true"}, "SANDBOX_BANK_ENABLED must be off"),
    ],
)
def test_production_refuses_to_start_with_a_missing_or_development_secret(
    tmp_path, changes, refusal
):
    result = _run(["-c", "import django; django.setup()"], _production_env(tmp_path, **changes))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and refusal in result.stderr


@pytest.mark.django_db(transaction=True)
def test_production_sends_hsts_csp_and_secure_cookies_and_has_no_sandbox(tmp_path):
    staff_user("agent", username="probe.agent", password=PASSWORD)
    result = _run(
        ["-m", "tests.reliability.production_probe", "probe.agent", PASSWORD],
        _production_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["debug"] is False
    assert probe["plain_http"]["status"] == 301
    assert probe["plain_http"]["location"].startswith("https://")
    headers = probe["home"]["headers"]
    assert probe["home"]["status"] == 200
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert probe["signed_in"] == 302
    for cookie in ("csrf_cookie", "session_cookie", "language_cookie"):
        assert probe[cookie] and probe[cookie]["secure"], (cookie, probe[cookie])
    assert probe["session_cookie"]["httponly"] and probe["csrf_cookie"]["httponly"]
    # No partner is usable without its secret in the environment: not even the sandbox.
    assert probe["partners"] == [] and probe["sandbox_bank"] is False


# --- Content-Security-Policy ----------------------------------------------------------------------
CSP_PAGES = [
    "/",
    "/?lang=en",
    "/bills/PA14HT0000001/",
    "/bills/not-a-code/",
    "/api/docs/",
    "/api/schema/",
    "/api/v1/collection/docs/",
    "/api/v1/collection/schema/",
    "/api/v1/customers/PA14HT0000001/bills/",
    "/api/v1/no-such-thing/",
    "/callbacks/SANDBOX/ipn/",
    "/callbacks/transfers/",
    "/console/",
    "/console/login/",
    "/admin/",
    "/admin/login/",
    "/health/",
    "/no-such-page/",
    "/static/css/portal.css",
]


# Its view sets its own policy with style-src 'unsafe-inline' for the same Swagger UI template
# the global policy now admits by hash; scripts stay restricted there too.
OWN_POLICY = {"/api/v1/collection/docs/"}


def _directives(policy: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())


@pytest.mark.django_db
def test_every_response_carries_the_content_security_policy(client):
    customer_with_bills(unpaid=1)
    from common.middleware import _policy

    for path in CSP_PAGES:
        response = client.get(path)
        assert response.status_code < 500, path
        policy = response.headers.get("Content-Security-Policy")
        assert policy, f"{path} has no Content-Security-Policy"
        directives = _directives(policy)
        assert directives["default-src"] == "'self'", path
        assert directives["script-src"] == "'self'", path  # no inline script, no eval
        assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
        assert directives["base-uri"] == "'self'" and "*" not in policy
        if path not in OWN_POLICY:
            assert policy == _policy(), path
    style = _directives(_policy())["style-src"]
    assert style == f"'self' {django_settings.SWAGGER_UI_STYLE_HASH}" and "unsafe" not in _policy()


def _csp_violations(tab: Any) -> list[str]:
    found: list[str] = []
    tab.on(
        "console",
        lambda message: (
            found.append(f"{tab.url}: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    return found


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_admin_and_the_api_docs_work_under_the_policy(page, live_server):
    User.objects.create_superuser("root.admin", "root@example.vn", PASSWORD)
    customer, _bills = customer_with_bills(unpaid=1)
    violations = _csp_violations(page)
    page.goto(live_server.url + "/admin/")
    page.fill("#id_username", "root.admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    for path in (
        "/admin/payments/payment/",
        "/admin/customers/customer/",
        f"/admin/customers/customer/{customer.pk}/change/",
        "/admin/payments/inboundmessage/",
    ):
        response = page.goto(live_server.url + path)
        assert response.status == 200, path
    # The admin's own scripts ran: the filter sidebar toggle and the date widgets are there.
    page.goto(live_server.url + "/admin/auth/user/add/")
    page.wait_for_selector("#id_username")
    for path in ("/api/docs/", "/api/v1/collection/docs/"):
        page.goto(live_server.url + path)
        page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
    assert violations == []


# --- Login and lockout ------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_admin_and_the_console_are_behind_a_login(client):
    for path, login in (("/admin/", "/admin/login/"), ("/console/", "/console/login/")):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith(login), path
    staff_user("agent", username="thu.ngan", password=PASSWORD)
    client.post("/console/login/", {"username": "thu.ngan", "password": PASSWORD})
    # An agent signed in to the console is still not an administrator.
    assert client.get("/console/").status_code == 200
    assert client.get("/admin/").status_code == 302


@pytest.mark.django_db
def test_the_admin_locks_a_user_name_out_and_so_does_the_console(client, settings):
    User.objects.create_superuser("root.admin", "root@example.vn", PASSWORD)
    codes = [
        client.post(
            "/admin/login/?next=/admin/", {"username": "root.admin", "password": "guess"}
        ).status_code
        for _attempt in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert codes == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429], codes
    # The right password no longer helps, on the admin or on the console.
    locked = client.post(
        "/admin/login/?next=/admin/", {"username": "root.admin", "password": PASSWORD}
    )
    assert locked.status_code == 429
    assert client.get("/admin/").status_code == 302
    console = client.post("/console/login/", {"username": "root.admin", "password": PASSWORD})
    assert console.status_code == 429
    assert client.get("/console/").status_code == 302


# --- Logs ------------------------------------------------------------------------------------------------
def _record(message: str, *args: Any, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("payments", logging.ERROR, __file__, 1, message, args, exc_info)


def test_the_mask_covers_keys_signatures_urls_phones_and_e_mails_but_not_codes():
    line = mask_sensitive(
        "GET /callbacks/SANDBOX/ipn/?vnp_OrderInfo=SDT%200912345678&vnp_SecureHash=ab12cd "
        "Authorization: Bearer eyJ.abc X-Signature: 9f8e postgres://portal:hunter2@db/portal "
        "to +84912345678 or 84912345678, an.nguyen@example.vn, bill HD0000000003 of "
        "PA14HT0012345, amount 45216000, paid 20260201033500 "
        'GET /pay/return/ZALOPAY/?apptransid=260201_EVN2&checksum=45e1e8 {"mac": "d8d33b"}'
    )
    for secret in (
        "0912345678",
        "ab12cd",
        "eyJ.abc",
        "9f8e",
        "hunter2",
        "84912345678",
        "an.nguyen",
        "45e1e8",
        "d8d33b",
    ):
        assert secret not in line, secret
    for kept in (
        "Bearer ***",
        "vnp_SecureHash=***",
        "*******678",
        "a***@example.vn",
        "checksum=***",
    ):
        assert kept in line, kept
    for untouched in ("HD0000000003", "PA14HT0012345", "45216000", "20260201033500"):
        assert untouched in line, untouched


def test_a_traceback_is_masked_like_the_message():
    try:
        raise ValueError("Failing row contains (transfer, CT tu 0912345678, Apikey s3cr3t-key)")
    except ValueError as exc:
        record = _record("transfer %s failed", "0987654321", exc=exc)
    MaskSensitiveFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "0912345678" not in text and "0987654321" not in text and "s3cr3t-key" not in text
    assert "Apikey ***" in text and "Traceback" in text


@pytest.mark.slow
@pytest.mark.celery_worker
def test_request_and_worker_logs_of_real_callbacks_carry_no_signature_or_phone(portal_stack):
    """The development server (as `make run` serves) logs every request line, query string
    included; the worker logs what tasks print (the console SMS backend). Both are masked."""
    figures = support.Figures("logs_masked", "Request and worker logs of real callbacks")
    web = portal_stack.start_web(server=support.DevServer)
    worker = portal_stack.start_worker(concurrency=1)
    # Log files are appended to across runs: read only what this test's processes write.
    web_from, worker_from = web.log_path.stat().st_size, worker.log_path.stat().st_size

    def written(path: Path, start: int) -> str:
        with path.open("rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace")

    payment = redirect_payment(amounts=[452_160])
    params = traffic.ipn_params(
        payment, transaction_no="55501", vnp_OrderInfo="Thanh toan tien dien SDT 0912345678"
    )
    assert traffic.send_ipn(web.url, params) == "00"
    customer, _bills = customer_with_bills(unpaid=1, phone="0912345678")
    from payments import services

    vietqr = services.payment_start(customer_code=customer.code, method="vietqr").payment
    assert traffic.send_transfer(web.url, traffic.transfer_body(vietqr)) == 200
    traffic.session().get(web.url + "/console/customers/?q=0912345678", timeout=10)
    wait_until(books.all_processed, timeout=30, interval=0.2)
    wait_until(lambda: "SMS to" in written(worker.log_path, worker_from), timeout=30)
    web.stop()
    worker.stop()

    requests_log = written(web.log_path, web_from)
    worker_log = written(worker.log_path, worker_from)
    assert "GET /callbacks/SANDBOX/ipn/?" in requests_log  # the lines are there...
    assert "vnp_SecureHash=***" in requests_log and "q=*******678" in requests_log
    assert "[SMS to *******678]" in worker_log
    for text in (requests_log, worker_log):  # ...and carry neither secret nor phone
        assert params["vnp_SecureHash"] not in text
        assert "0912345678" not in text
        assert support.WEBHOOK_KEY not in text and support.SANDBOX_SECRET not in text
    books.close_books(
        figures,
        messages_sent=3,
        duplicates=0,
        faults_injected=0,
        lost=books.unsettled([payment, vietqr]),
        doubled=books.doubled(),
    )


@pytest.mark.django_db
@pytest.mark.parametrize("username", ["demo-agent", "demo-supervisor", "demo-finance"])
def test_the_demo_accounts_never_sign_in_in_production(client, settings, username):
    """A database seeded in development may reach production: its demo accounts (password in
    the README) are refused there, also for a session opened before; a real agent is not."""

    def sign_in(name: str) -> bool:
        client.post("/console/login/", {"username": name, "password": PASSWORD})
        return client.get("/console/").status_code == 200

    settings.DEBUG = True
    demo = staff_user("agent", username=username, password=PASSWORD)
    assert sign_in(username)
    settings.DEBUG = False
    assert client.get("/console/").status_code == 302  # the open session no longer counts
    assert not sign_in(username)
    staff_user("agent", username="real.agent", password=PASSWORD)
    assert sign_in("real.agent")
    demo.refresh_from_db()
    assert demo.is_active  # refused by the sign-in, not by editing the account


def test_a_bare_checkout_runs_developer_commands_but_never_a_server(tmp_path):
    """Nothing configured (no DEBUG, SECRET_KEY or DATABASE_URL, no .env): `manage.py` commands
    are a developer's and run with the development settings; a server still refuses."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "LANG": "C.UTF-8",
        "PORTAL_VAR_DIR": str(tmp_path / "var"),
    }
    checked = _run(["manage.py", "makemigrations", "--check", "--dry-run"], env)
    assert checked.returncode == 0, checked.stderr
    assert "No changes detected" in checked.stdout
    served = _run(["manage.py", "runserver", "--noreload", "127.0.0.1:0"], env)
    assert served.returncode != 0 and "SECRET_KEY must be set" in served.stderr
    wsgi = _run(["-c", "import config.wsgi"], {**env, "PYTHONPATH": str(ROOT)})
    assert wsgi.returncode != 0 and "SECRET_KEY must be set" in wsgi.stderr
