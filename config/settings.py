"""Settings for the bill-payment portal, read from environment variables.

Every variable is listed with its default in `.env.example`. With no environment at all the portal
runs on SQLite and a file-system Celery broker under `var/`, so a bare machine can run it; with
`DATABASE_URL` and `CELERY_BROKER_URL` it uses PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
# A malformed boolean or number fails here, at start-up, rather than at the first request.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core ---------------------------------------------------------------------------------------
# Production unless told otherwise: `make run` and the test settings (tests/settings.py) say
# DEBUG=true; a server started with nothing configured refuses to start (no SECRET_KEY).
DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "dev-only-insecure-key-change-me-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not DEBUG and (not SECRET_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured("SECRET_KEY must be set to a random value of 50+ characters.")

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "common",
    "customers",
    "payments",
    "console",
    "portal",
    "sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "common.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "common.middleware.DefaultLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks, so it sees the outcome of authentication.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "builtins": ["common.templatetags.formatting"],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
DATABASES = {
    "default": environ.Env.db_url_config(
        env.str("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
    ),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
# Off: checking a kept connection costs every request a round trip (the public lookup is one
# query). A connection broken by a database restart fails the one request that finds it, is
# then replaced (a bank retries its callback, a task retries or beat runs it again);
# CONN_HEALTH_CHECKS=true trades the round trip for that.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default: web, worker and beat share one file. WAL lets readers run beside the
    # writer; IMMEDIATE transactions take the write lock up front instead of failing on upgrade.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # Prepared statements where a cursor asks for them (customers/selectors.py's lookup): Django's
    # cursors bind values in the query text and never do. Off by Django's default.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 5)
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default=None)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and rate limits ----------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="portal"),
            "TIMEOUT": 300,
        }
    }
else:
    # The embedded default: a cache on disk, so the web, the workers and the commands share it
    # as they share Redis in production (a settlement in a worker clears the cached bills page
    # the web serves). An in-process cache would leave each process its own stale copy.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="portal"),
            "TIMEOUT": 300,
        }
    }

LOOKUP_RATE_LIMIT = env.str("LOOKUP_RATE_LIMIT", default="30/m")
# Lookups are cached this long (masked data only); a settled payment clears its customer's entry.
LOOKUP_CACHE_SECONDS = env.int("LOOKUP_CACHE_SECONDS", default=60)
if not re.fullmatch(r"\d+/[smhd]", LOOKUP_RATE_LIMIT):
    raise ImproperlyConfigured("LOOKUP_RATE_LIMIT must look like 30/m (count per s, m, h or d).")
# Number of trusted proxies in front of the app; 0 means use REMOTE_ADDR as the client address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- Celery -------------------------------------------------------------------------------------
_BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (_BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith("redis"):
    # Unacknowledged tasks come back after this long if a worker dies without a goodbye.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 600,
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=4)
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Tasks are idempotent: on a lost broker connection, let them run again rather than linger.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Publishing must not hang a web request when the broker is down: the inbox sweeper re-sends.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "payments.tasks.apply_inbox": {"queue": "callbacks"},
    "payments.tasks.sweep_inbox": {"queue": "callbacks"},
    "payments.tasks.purge_refused_messages": {"queue": "reports"},
    "payments.tasks.reconcile_dropped_statements": {"queue": "reports"},
    "payments.tasks.warm_noncash_dashboard": {"queue": "reports"},
}
CELERY_TIMEZONE = "Asia/Ho_Chi_Minh"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "expire-stale-payments": {"task": "payments.tasks.expire_stale_payments", "schedule": 30.0},
    "sweep-inbox": {"task": "payments.tasks.sweep_inbox", "schedule": 15.0},
    "purge-refused-messages": {
        "task": "payments.tasks.purge_refused_messages",
        "schedule": crontab(minute=17),
    },
    "poll-pending-gateway-payments": {
        "task": "payments.tasks.poll_pending_gateway_payments",
        "schedule": 30.0,
    },
    "warm-noncash-dashboard": {
        "task": "payments.tasks.warm_noncash_dashboard",
        "schedule": 600.0,
    },
    # Queues "due soon" and "overdue" reminders; the sender below sends what is due.
    "queue-reminders": {
        "task": "payments.tasks.queue_reminders",
        "schedule": crontab(hour=7, minute=30),
    },
    "send-reminders": {"task": "payments.tasks.send_reminders", "schedule": 60.0},
    # Partners drop their end-of-day settlement files overnight.
    "reconcile-dropped-statements": {
        "task": "payments.tasks.reconcile_dropped_statements",
        "schedule": crontab(hour=2, minute=30),
    },
}

# An inbox message whose last attempt failed waits this long before the next one.
INBOX_RETRY_AFTER = timedelta(seconds=env.int("INBOX_RETRY_AFTER_SECONDS", default=30))
# Refused messages (forged signature, no credentials, unlisted address) cost an attacker nothing:
# each is kept with at most this much of its body, at most this many per client address (the
# rest are answered alike but not kept), and purged after this many days.
INBOX_REFUSED_BODY_LIMIT = env.int("INBOX_REFUSED_BODY_LIMIT", default=2000)
INBOX_REFUSED_RATE_LIMIT = env.str("INBOX_REFUSED_RATE_LIMIT", default="60/m")
if not re.fullmatch(r"\d+/[smhd]", INBOX_REFUSED_RATE_LIMIT):
    raise ImproperlyConfigured(
        "INBOX_REFUSED_RATE_LIMIT must look like 60/m (count per s, m, h or d)."
    )
INBOX_REFUSED_RETENTION_DAYS = env.int("INBOX_REFUSED_RETENTION_DAYS", default=30)

# --- Auth, sessions, lockout --------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # After axes, so that it sees only attempts axes let through: see console/signin.py.
    "console.signin.UserNameCeilingBackend",
    "console.signin.StaffBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Attempts while locked are refused without being recorded, so the lock ends AXES_COOLOFF_TIME
# after the last real failure instead of growing with every refused try.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The client's address as the rate limits see it: behind the proxy, not the proxy's own.
AXES_CLIENT_IP_CALLABLE = "console.signin.axes_client_ip"
# Failed sign-ins for one user name from all addresses together ("count/period"): past it the
# name is refused until the window ends (at most one period, never longer), except from an
# address it signed in from lately. Axes' limit above is per (user name, address).
SIGNIN_USERNAME_RATE = env.str("SIGNIN_USERNAME_RATE", default=f"{AXES_FAILURE_LIMIT * 4}/15m")
if not re.fullmatch(r"\d+/\d*[smhd]", SIGNIN_USERNAME_RATE):
    raise ImproperlyConfigured("SIGNIN_USERNAME_RATE must look like 20/15m (count per period).")
# How long an address that signed in stays known to its user name (exempt from the ceiling).
SIGNIN_KNOWN_ADDRESS_DAYS = env.int("SIGNIN_KNOWN_ADDRESS_DAYS", default=30)
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
# The console's lockout page, for /admin/ too, instead of axes' plain text.
AXES_LOCKOUT_CALLABLE = "console.views.auth.lockout_response"

# --- Internationalisation -----------------------------------------------------------------------
LANGUAGE_CODE = "vi"
LANGUAGES = [("vi", "Tiếng Việt"), ("en", "English")]
# One catalog per feature under locale/parts/, so features are translated independently.
LOCALE_PATHS = [BASE_DIR / "locale", *sorted((BASE_DIR / "locale" / "parts").glob("*"))]
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = "Asia/Ho_Chi_Minh"
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or env.bool("STATIC_FROM_FINDERS", default=False)
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG or env.bool("STATIC_FROM_FINDERS", default=False)
WHITENOISE_MAX_AGE = 0 if DEBUG else 86400

# --- API ----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Bill-payment portal API",
    "DESCRIPTION": (
        "Public API of the electricity bill-payment portal: bills of a customer, payments by "
        "VietQR, bank redirect and the MoMo and ZaloPay wallets. Errors always have the shape "
        '`{"error": {"code", "message", "fields"}}`.\n\n'
        "**Bank callbacks.** Banks call the portal on these URLs; they answer in each "
        "protocol's own shape, not the error shape above.\n\n"
        "| endpoint | sender | request | answer |\n| --- | --- | --- | --- |\n"
        "| `GET /callbacks/{partner}/ipn/` | the gateway's server (IPN) | the VNPay 2.1.0 "
        "parameters, signed with HMAC-SHA512 (`vnp_SecureHash`) | 200 "
        '`{"RspCode": "00", "Message": "Confirm Success"}`; `01` unknown order, `02` already '
        "confirmed, `04` wrong amount, `97` bad signature, `99` other |\n"
        "| `POST /callbacks/momo/ipn/` | MoMo's server (IPN, API v2) | JSON `partnerCode`, "
        "`orderId`, `requestId`, `amount` (whole VND), `orderInfo`, `orderType`, `transId`, "
        "`resultCode`, `message`, `payType`, `responseTime`, `extraData`, signed with "
        "HMAC-SHA256 (`signature`) | 204 once stored (a repeat too, applied once); 401 bad "
        "signature; 403 address not allowed; 400 malformed; 503 not stored, send it again |\n"
        "| `POST /callbacks/zalopay/callback/` | ZaloPay's server (callback, API v2) | JSON "
        '`{"data": "<JSON string>", "mac": "…", "type": 1}`, `mac` = HMAC-SHA256 with KEY2 over '
        "`data` as sent | 200 "
        '`{"return_code": 1, "return_message": "success"}`; `2` already processed (a repeat, '
        "or a payment already final), `-1` bad MAC, `0` not stored, try again; 400 malformed |\n"
        "| `GET /pay/return/{partner}/` | the household's browser, back from the gateway or "
        "the wallet | the partner's return parameters (VNPay's, MoMo's, ZaloPay's) | a page "
        "with the payment's real status (never applied from here) |\n"
        "| `POST /callbacks/transfers/` | the transfer-notification service | header "
        "`Authorization: Apikey KEY`; SePay-shaped JSON (`id`, `gateway`, `transactionDate`, "
        "`accountNumber`, `content`, `transferType`, `transferAmount`, `referenceCode`) | 200 "
        '`{"success": true}` once stored (a repeated `id` too, applied once); 401 bad key; 400 '
        "malformed |\n\n"
        "A transfer pays a payment, or a bill, when its note carries the payment's reference "
        "(`EVN…`, 12 characters) or the bill's own (`HD…`, 11, printed on the paper bill) and "
        "its amount is exact."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["common.openapi.public_endpoints_only"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Domain -------------------------------------------------------------------------------------
CUSTOMER_CODE_PATTERN = env.str("CUSTOMER_CODE_PATTERN", default=r"^P[A-Z][0-9A-Z]{11}$")
try:
    re.compile(CUSTOMER_CODE_PATTERN)
except re.error as exc:  # pragma: no cover - a configuration error, reported at start-up
    raise ImproperlyConfigured(f"CUSTOMER_CODE_PATTERN is not a valid expression: {exc}") from exc
PAYMENT_TTL = timedelta(minutes=env.int("PAYMENT_TTL_MINUTES", default=15))
# Money that paid nothing (bills already paid by another payment) goes back to the account it
# came from within this many working days: what the household is told, on the page and in the
# receipt.
REFUND_WORKING_DAYS = env.int("REFUND_WORKING_DAYS", default=7)
# Held money (a transfer kept for an agent, what a payment owes back) that an agent applies to a
# customer's bills: above this many VND it takes a supervisor (the refund permission), since a
# mistake moves one household's money onto another's bills.
CREDIT_APPROVAL_ABOVE_VND = env.int("CREDIT_APPROVAL_ABOVE_VND", default=2_000_000)
# When to ask a gateway about a pending redirect payment whose IPN has not come: 1, 2, 5 and 15
# minutes after it started, then every 15 minutes until expiry plus the grace period.
GATEWAY_POLL_SCHEDULE = [
    timedelta(minutes=int(m))
    for m in env.list("GATEWAY_POLL_MINUTES", default=["1", "2", "5", "15"])
]
# Talking to a bank's API: (connect, read) timeouts, and the address we tell it we call from.
GATEWAY_HTTP_TIMEOUT = (
    env.float("GATEWAY_CONNECT_TIMEOUT_SECONDS", default=3.05),
    env.float("GATEWAY_READ_TIMEOUT_SECONDS", default=10.0),
)
GATEWAY_SERVER_IP = env.str("GATEWAY_SERVER_IP", default="127.0.0.1")
# A gateway payment is still polled this long after it expired: banks settle late.
GATEWAY_POLL_GRACE = timedelta(minutes=env.int("GATEWAY_POLL_GRACE_MINUTES", default=30))
NONCASH_TARGET_PERCENT = env.float("NONCASH_TARGET_PERCENT", default=80.0)

VIETQR_BIN = env.str("VIETQR_BIN", default="970436")
VIETQR_ACCOUNT = env.str("VIETQR_ACCOUNT", default="0011004321987")
VIETQR_ACCOUNT_NAME = env.str("VIETQR_ACCOUNT_NAME", default="CONG TY DIEN LUC HA TINH")

TRANSFER_WEBHOOK_API_KEY = env.str(
    "TRANSFER_WEBHOOK_API_KEY", default="dev-transfer-webhook-key" if DEBUG else ""
)
# Signs the pay link printed on each bill (/b/{token}/): checked without any table, so whoever
# holds this key can make links; unset in production, bills carry no link.
PAY_LINK_KEY = env.str("PAY_LINK_KEY", default="dev-pay-link-key" if DEBUG else "")
# A bill's link keeps working this long after its due date (overdue bills are paid late).
PAY_LINK_VALID_AFTER_DUE = timedelta(days=env.int("PAY_LINK_VALID_DAYS_AFTER_DUE", default=56))
# Signs the opt-out link in every reminder (/unsubscribe/{token}/): checked without any table.
UNSUBSCRIBE_LINK_KEY = env.str(
    "UNSUBSCRIBE_LINK_KEY", default="dev-unsubscribe-link-key" if DEBUG else ""
)
# A monitor sending "Authorization: Bearer HEALTH_TOKEN" sees /health/'s details (database,
# broker); unset, only signed-in staff do. Everyone else sees up or down.
HEALTH_TOKEN = env.str("HEALTH_TOKEN", default="")


# The fields of `PARTNER_<CODE>_<FIELD>`: a bank's page (VNPay 2.1.0) takes SECRET, TMN_CODE,
# PAY_URL, API_URL; MoMo SECRET, ACCESS_KEY, PARTNER_CODE, API_URL; ZaloPay KEY1, KEY2, APP_ID,
# API_URL; the collection API SECRET. ALLOWED_IPS for any of them.
_PARTNER_FIELDS = (
    "SECRET",
    "TMN_CODE",
    "PAY_URL",
    "API_URL",
    "ALLOWED_IPS",
    "ACCESS_KEY",
    "PARTNER_CODE",
    "KEY1",
    "KEY2",
    "APP_ID",
)
# The fields that are keys: a partner without any stays disabled.
_PARTNER_KEYS = ("secret", "key1", "key2")


def _partner_credentials() -> dict[str, dict[str, str]]:
    """Collect `PARTNER_<CODE>_<FIELD>` variables; a partner without a secret or key stays
    disabled."""
    found: dict[str, dict[str, str]] = {}
    pattern = re.compile(rf"^PARTNER_([A-Z0-9]+?)_({'|'.join(_PARTNER_FIELDS)})$")
    for name, value in os.environ.items():
        match = pattern.match(name)
        if match and value:
            found.setdefault(match.group(1), {})[match.group(2).lower()] = value
    if DEBUG:
        sandbox = found.setdefault("SANDBOX", {})
        sandbox.setdefault("secret", "dev-sandbox-secret-0123456789ABCDEF")
        sandbox.setdefault("tmn_code", "EVNHT001")
        sandbox.setdefault("pay_url", f"{PORTAL_BASE_URL}/sandbox/paymentv2/vpcpay.html")
        sandbox.setdefault("api_url", f"{PORTAL_BASE_URL}/sandbox/merchant_webapi/api/transaction")
    return {
        code: values
        for code, values in found.items()
        if any(values.get(key) for key in _PARTNER_KEYS)
    }


PARTNER_CREDENTIALS = _partner_credentials()

SANDBOX_BANK_ENABLED = env.bool("SANDBOX_BANK_ENABLED", default=DEBUG)
SANDBOX_MERCHANT_NAME = env.str("SANDBOX_MERCHANT_NAME", default="Công ty Điện lực Hà Tĩnh")
# What the sandbox bank does with its server-to-server notification: deliver it, delay it by
# SANDBOX_IPN_DELAY_SECONDS, or drop it (to show the poller recovering a missed IPN).
SANDBOX_IPN_MODE = env.str("SANDBOX_IPN_MODE", default="deliver")
if SANDBOX_IPN_MODE not in ("deliver", "delay", "drop"):
    raise ImproperlyConfigured("SANDBOX_IPN_MODE must be deliver, delay or drop.")
SANDBOX_IPN_DELAY_SECONDS = env.int("SANDBOX_IPN_DELAY_SECONDS", default=120)
# The key the sandbox, playing the SMS gateway (/sandbox/sms/), checks requests with.
SANDBOX_SMS_KEY = env.str("SANDBOX_SMS_KEY", default="dev-sms-gateway-key" if DEBUG else "")
# The sandbox bank reaches the portal here for IPNs and transfer notifications.
SANDBOX_PORTAL_URL = env.str("SANDBOX_PORTAL_URL", default=PORTAL_BASE_URL).rstrip("/")

RECONCILIATION_DROP_DIR = Path(
    env.str("RECONCILIATION_DROP_DIR", default=str(VAR_DIR / "reconciliation"))
)
RECONCILIATION_REPORT_DIR = Path(
    env.str("RECONCILIATION_REPORT_DIR", default=str(VAR_DIR / "reports" / "reconciliation"))
)

# --- Notifications ------------------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="hoadon@evnhatinh.example.vn")
SMS_BACKEND = env.str("SMS_BACKEND", default="payments.notifications.ConsoleSMSBackend")
# An HTTP SMS gateway: when its URL is set, every SMS (receipts, reminders) goes there, each
# request signed with HMAC-SHA256 over its body with SMS_GATEWAY_KEY; unset, SMS_BACKEND above.
# In development the sandbox plays the gateway: {PORTAL_BASE_URL}/sandbox/sms/.
SMS_GATEWAY_URL = env.str("SMS_GATEWAY_URL", default="")
SMS_GATEWAY_KEY = env.str("SMS_GATEWAY_KEY", default="dev-sms-gateway-key" if DEBUG else "")
if SMS_GATEWAY_URL and not SMS_GATEWAY_KEY:
    raise ImproperlyConfigured("SMS_GATEWAY_URL needs SMS_GATEWAY_KEY to sign its requests.")

# --- Reminders ----------------------------------------------------------------------------------
# "Due soon" reminders go this many days before the due date.
REMINDER_DUE_SOON_DAYS = env.int("REMINDER_DUE_SOON_DAYS", default=3)
# Messages a sender task takes at a time; a failed one is tried again after
# REMINDER_RETRY_SECONDS, doubled each time, at most REMINDER_MAX_ATTEMPTS times in all.
REMINDER_BATCH_SIZE = env.int("REMINDER_BATCH_SIZE", default=500)
# Messages of a batch handed to the SMS gateway or the mail server at once, each waiting for
# its answer in a thread of its own.
REMINDER_SEND_CONCURRENCY = env.int("REMINDER_SEND_CONCURRENCY", default=8)
REMINDER_RETRY_SECONDS = env.int("REMINDER_RETRY_SECONDS", default=60)
REMINDER_MAX_ATTEMPTS = env.int("REMINDER_MAX_ATTEMPTS", default=5)

# --- Security -----------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
# Flash messages in a signed cookie, not the session: the bills page shows them (a refused
# payment start) and runs without sessions (config/wsgi.py).
MESSAGE_STORAGE = "django.contrib.messages.storage.cookie.CookieStorage"
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Development values that must never reach production, even when copied from .env.example
# (any value written in the docs or examples is refused as well: `_published`).
_DEVELOPMENT_SECRETS = frozenset(
    {
        _DEV_SECRET_KEY,
        "dev-transfer-webhook-key",
        "dev-pay-link-key",
        "dev-unsubscribe-link-key",
        "dev-sms-gateway-key",
        "dev-sandbox-secret-0123456789ABCDEF",
        # `make run`'s wallets (Makefile), against the sandbox's.
        "dev-momo-secret-key-0123456789abcdef",
        "dev-zalopay-key1-0123456789abcdef",
        "dev-zalopay-key2-0123456789abcdef",
    }
)


def _published(secret: str) -> bool:
    """Whether a value is written in the repository's docs or examples (README, .env.example,
    docs/): public, whatever it looks like, so never a production secret."""
    texts = [BASE_DIR / "README.md", BASE_DIR / ".env.example"]
    texts += sorted((BASE_DIR / "docs").rglob("*.md")) + sorted((BASE_DIR / "docs").rglob("*.py"))
    for path in texts:
        try:
            if secret in path.read_text(encoding="utf-8"):
                return True
        except OSError:  # a deployment without the docs: the list above still applies
            continue
    return False


def _refuse_public(name: str, secret: str) -> None:
    if secret and (secret in _DEVELOPMENT_SECRETS or _published(secret)):
        raise ImproperlyConfigured(
            f"{name} is a development or published value (README, .env.example or docs/): "
            "set a secret of your own in production."
        )


if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    LANGUAGE_COOKIE_SECURE = True
    if not TRANSFER_WEBHOOK_API_KEY:
        raise ImproperlyConfigured("TRANSFER_WEBHOOK_API_KEY must be set in production.")
    if len(TRANSFER_WEBHOOK_API_KEY) < 16:
        raise ImproperlyConfigured(
            "TRANSFER_WEBHOOK_API_KEY must be a random value of 16+ characters in production."
        )
    for _code, _credentials in PARTNER_CREDENTIALS.items():
        for _key in _PARTNER_KEYS:
            if _key in _credentials and len(_credentials[_key]) < 16:
                raise ImproperlyConfigured(
                    f"PARTNER_{_code}_{_key.upper()} must be the partner's real key "
                    "(16+ characters)."
                )
    _refuse_public("SECRET_KEY", SECRET_KEY)
    _refuse_public("TRANSFER_WEBHOOK_API_KEY", TRANSFER_WEBHOOK_API_KEY)
    _refuse_public("HEALTH_TOKEN", HEALTH_TOKEN)
    _refuse_public("PAY_LINK_KEY", PAY_LINK_KEY)
    _refuse_public("UNSUBSCRIBE_LINK_KEY", UNSUBSCRIBE_LINK_KEY)
    _refuse_public("SMS_GATEWAY_KEY", SMS_GATEWAY_KEY)
    if PAY_LINK_KEY and len(PAY_LINK_KEY) < 32:
        raise ImproperlyConfigured("PAY_LINK_KEY must be a random value of 32+ characters.")
    if UNSUBSCRIBE_LINK_KEY and len(UNSUBSCRIBE_LINK_KEY) < 32:
        raise ImproperlyConfigured("UNSUBSCRIBE_LINK_KEY must be a random value of 32+ characters.")
    for _code, _credentials in PARTNER_CREDENTIALS.items():
        for _key in _PARTNER_KEYS:
            _refuse_public(f"PARTNER_{_code}_{_key.upper()}", _credentials.get(_key, ""))
    if SANDBOX_BANK_ENABLED:
        # The sandbox bank signs approvals with the SANDBOX secret and sends transfer
        # notifications with the webhook key: in production it would pay bills for free.
        raise ImproperlyConfigured("SANDBOX_BANK_ENABLED must be off in production.")

# Content-Security-Policy sent on every response: everything from this origin, nothing else.
# One exception, by hash rather than 'unsafe-inline': the page layout <style> of
# drf-spectacular's Swagger UI template (/api/docs/); if the template changes, the browser names
# the new hash and tests/reliability/test_security.py fails until it is updated here.
SWAGGER_UI_STYLE_HASH = "'sha256-MMpT0iDxyjALd9PdfepImGX3DBfJPXZ4IlDWdPAgtn0='"
CONTENT_SECURITY_POLICY = (
    f"default-src 'self'; img-src 'self' data:; style-src 'self' {SWAGGER_UI_STYLE_HASH}; "
    "script-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self' {form_targets}; frame-ancestors 'none'"
)

# --- Logging ------------------------------------------------------------------------------------
# Every handler masks signatures, keys, phone numbers and e-mail addresses (common.logging),
# including the development server's request lines, which carry the banks' query strings.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask": {"()": "common.logging.MaskSensitiveFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["mask"]},
        "server": {"class": "logging.StreamHandler", "formatter": "server", "filters": ["mask"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["server"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}
# Celery would otherwise replace the root handler with its own, unmasked one; kept, the worker's
# lines (and what tasks print, e.g. the console SMS backend) pass the same filter.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
