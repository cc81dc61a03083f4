"""Django settings. Every value comes from an environment variable; defaults are production-safe.

Local development (the README's run command) sets DEBUG=1 and points DATABASE_URL / REDIS_URL at the
embedded services; production must set SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and REDIS_URL.
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from brokerage.env import env_bool, env_int, env_list, env_str

# Lets `admin.ModelAdmin[Model]` and similar generics work at run time, as the type stubs expect.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-" + "x" * 20

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "apps.common",
    "apps.audit",
    "apps.accounts",
    "apps.kyc",
    "apps.instruments",
    "apps.orders",
    "apps.portfolio",
    "apps.settlement",
    "apps.matching",
    "apps.ledger",
    "apps.funding",
    "apps.ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "apps.accounts.middleware.SessionIdleTimeoutMiddleware",
    "apps.accounts.middleware.MfaRequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Axes last: it turns lockout signals raised during authentication into a response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "brokerage.urls"
WSGI_APPLICATION = "brokerage.wsgi.application"
ASGI_APPLICATION = "brokerage.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Data stores -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/brokerage")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "brk"),
    }
}
CHANNEL_LAYERS = {
    "default": {
        # The pub/sub layer fans out to many sockets far faster than the core layer (measured
        # ~8 ms vs ~46 ms for 1,000 members on this hardware).
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": env_str("CHANNEL_PREFIX", "brk-ch")},
    }
}

# --- Authentication and sessions -------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "accounts:login"

SESSION_ENGINE = "django.contrib.sessions.backends.db"  # server-side: logout really invalidates
SESSION_COOKIE_AGE = env_int("SESSION_MAX_AGE_SECONDS", 12 * 3600)
SESSION_IDLE_TIMEOUT_SECONDS = env_int("SESSION_IDLE_TIMEOUT_SECONDS", 15 * 60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_NAME = "brk_session"
CSRF_COOKIE_HTTPONLY = False  # the trader UI's JS reads it to send X-CSRFToken

AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Our login service calls authenticate(username=<email>); axes would otherwise look for "email".
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "apps.accounts.views.lockout_response"
AXES_VERBOSE = False

OTP_TOTP_ISSUER = env_str("OTP_ISSUER", "Brokerage")
OTP_TOTP_TOLERANCE = 1
MFA_BACKUP_CODE_COUNT = 10
API_TOKEN_DEFAULT_TTL_DAYS = env_int("API_TOKEN_DEFAULT_TTL_DAYS", 90)
EMAIL_VERIFICATION_MAX_AGE_SECONDS = 3 * 24 * 3600

# --- Security headers (check --deploy clean by default) ---------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Health probes come over plain HTTP from the orchestrator.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# --- Files -------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "var" / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
# Uploaded files are private (KYC documents); they are served only through access-checked views.
MEDIA_URL = "/private-media/"
_s3_bucket = env_str("AWS_STORAGE_BUCKET_NAME", "")
STORAGES = {
    "default": (
        {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": _s3_bucket,
                "default_acl": "private",
                "querystring_auth": True,
                "file_overwrite": False,
            },
        }
        if _s3_bucket
        else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    ),
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedStaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024
KYC_DOCUMENT_MAX_BYTES = env_int("KYC_DOCUMENT_MAX_BYTES", 10 * 1024 * 1024)

# --- Email -------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Brokerage <no-reply@brokerage.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

# --- REST API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "apps.accounts.permissions.IsOtpVerified",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.common.exception_handler.api_exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Per-user rate limits (apps/common/throttling.py; see "API rate limits" at the end).
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.common.throttling.UserRateThrottle",
        "apps.common.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("API_RATE_USER", "1200/min"),
        "anon": env_str("API_RATE_ANON", "60/min"),
        "orders_burst": env_str("API_RATE_ORDERS_BURST", "20/s"),
        "orders_sustained": env_str("API_RATE_ORDERS_SUSTAINED", "600/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Brokerage API",
    "DESCRIPTION": "REST API for the brokerage's mobile apps. Money is sent as decimal strings.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Celery ------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULE = {
    "sessions-clear-expired": {
        "task": "apps.accounts.tasks.sessions_clear_expired",
        "schedule": timedelta(hours=1),
    },
    "audit-chain-verify": {
        "task": "apps.audit.tasks.audit_chain_verify_task",
        "schedule": timedelta(hours=6),
    },
}

# --- I18N / time -------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Ledger and funding ------------------------------------------------------------------------
# Dotted path of the apps.funding.gateways.PaymentGateway subclass used for deposits and payouts
# (loaded at call time). The simulated gateway fails any amount whose cents are .13.
PAYMENT_GATEWAY = env_str("PAYMENT_GATEWAY", "apps.funding.gateways.SimulatedGateway")
# Withdrawals strictly above this amount (in the withdrawal's currency, decimal string) wait for
# WITHDRAWAL_APPROVALS_REQUIRED approvals by distinct staff users in the admin (maker-checker).
WITHDRAWAL_APPROVAL_THRESHOLD = env_str("WITHDRAWAL_APPROVAL_THRESHOLD", "10000")
# Per-currency overrides of the threshold, e.g. "BTC=0.5,EUR=9000".
WITHDRAWAL_APPROVAL_THRESHOLDS: dict[str, str] = {
    code.strip().upper(): value.strip()
    for code, _, value in (i.partition("=") for i in env_list("WITHDRAWAL_APPROVAL_THRESHOLDS"))
    if value.strip()
}
# At least 2: the approvals come from that many different staff users (never the requester).
WITHDRAWAL_APPROVALS_REQUIRED = max(2, env_int("WITHDRAWAL_APPROVALS_REQUIRED", 2))
# Deposits/withdrawals whose background step has not run after this long are re-enqueued (the
# broker may have been down when the transaction committed).
FUNDING_RESUME_AFTER_SECONDS = env_int("FUNDING_RESUME_AFTER_SECONDS", 300)
CELERY_BEAT_SCHEDULE["funding-resume-stalled"] = {
    "task": "apps.funding.tasks.funding_resume_stalled_task",
    "schedule": timedelta(minutes=5),
}

# --- Settlement --------------------------------------------------------------------------------
# `manage.py run_outbox_relay` (Procfile: relay) publishes committed matcher commands from the
# transactional outbox (apps/orders/relay.py); `manage.py run_settlement --shard N` (Procfile:
# settlement) applies shard N's matcher events to orders, fills, cash and positions
# (apps/settlement/services.py). Commissions come from the users' risk tiers (admin).
OUTBOX_RELAY_BATCH = env_int("OUTBOX_RELAY_BATCH", 500)  # commands per transaction
OUTBOX_RELAY_POLL_MS = env_int("OUTBOX_RELAY_POLL_MS", 1000)  # poll when no NOTIFY came
OUTBOX_RETENTION_DAYS = env_int("OUTBOX_RETENTION_DAYS", 7)  # published rows kept this long
SETTLEMENT_BATCH_EVENTS = env_int("SETTLEMENT_BATCH_EVENTS", 500)  # events per transaction
# DAY orders expire at their calendar's session close: every minute, an end_of_session command
# is enqueued (once, idempotent id) for each instrument whose session closed.
CELERY_BEAT_SCHEDULE["settlement-session-close"] = {
    "task": "apps.settlement.tasks.session_close_enqueue_task",
    "schedule": timedelta(minutes=1),
}

# --- Matching worker ---------------------------------------------------------------------------
# `manage.py run_matcher` (Procfile: matcher) runs one shard's worker; see apps/matching/protocol.py
# for the Redis keys and apps/matching/worker/runner.py for durability. Journal and snapshots of
# shard N live in MATCHER_JOURNAL_DIR/shard-N: a local disk with working fsync, backed up; losing
# it loses the order books.
MATCHER_JOURNAL_DIR = env_str("MATCHER_JOURNAL_DIR", str(BASE_DIR / "var" / "matcher"))
# Symbols are spread over shards by crc32(symbol) % MATCHER_SHARDS; a worker refuses to start on
# a journal written with another count (moving books between shards is not automatic).
MATCHER_SHARDS = env_int("MATCHER_SHARDS", 1)
MATCHER_SHARD = env_int("MATCHER_SHARD", 0)  # run_matcher's default --shard
# CPU the worker pins itself to (-1: not pinned). Keep it off the CPUs Redis and web use.
MATCHER_CPU = env_int("MATCHER_CPU", -1)
MATCHER_SNAPSHOT_INTERVAL = env_int("MATCHER_SNAPSHOT_INTERVAL", 300)  # seconds
MATCHER_SNAPSHOT_EVERY = env_int("MATCHER_SNAPSHOT_EVERY", 1_000_000)  # commands
# Applied command ids remembered for de-duplication (~130 bytes each), at most 24 h.
MATCHER_DEDUPE_IDS = env_int("MATCHER_DEDUPE_IDS", 1_000_000)
# Approximate cap on output stream entries (each holds one batch's events); 0 = never trim.
MATCHER_OUT_MAXLEN = env_int("MATCHER_OUT_MAXLEN", 1_000_000)
MATCHER_PREFIX = env_str("MATCHER_PREFIX", "matcher")  # Redis keys <prefix>:in:<shard> ...
MATCHER_MD_PREFIX = env_str("MATCHER_MD_PREFIX", "md")  # market data channels md:<SYMBOL>
# /healthz/matcher answers 503 when a worker has not reported for this long.
MATCHER_HEALTH_STALE_SECONDS = env_int("MATCHER_HEALTH_STALE_SECONDS", 5)
SECURE_REDIRECT_EXEMPT = [*SECURE_REDIRECT_EXEMPT, r"^healthz/matcher$"]

# --- API rate limits ---------------------------------------------------------------------------
# REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] above, counted per user (per client address when
# anonymous) in fixed windows in Redis; over the limit the API answers 429 {"code": "throttled"}
# with Retry-After. Format "<count>/<s|min|h|day>" (e.g. "20/s", "100/10s"); empty disables.
#   API_RATE_USER              every signed-in API request               (default 1200/min)
#   API_RATE_ANON              anonymous requests reaching a view: login (default 60/min)
#   API_RATE_ORDERS_BURST      order place / cancel / replace per second (default 20/s)
#   API_RATE_ORDERS_SUSTAINED  order place / cancel / replace per minute (default 600/min)
# Daily order counts are a risk limit per tier (RiskTier.daily_order_limit), not a rate limit.

# --- OpenAPI enum names of the trading API (several components have "status" / "side" fields) --
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {
    "OrderStatusEnum": "apps.orders.models.OrderStatus",
    "OrderSideEnum": "apps.orders.models.Side",
    "InstrumentStatusEnum": "apps.instruments.models.InstrumentStatus",
    "PositionSideEnum": [("long", "Long"), ("short", "Short")],
}
