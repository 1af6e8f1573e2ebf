"""Settings for every environment, read from the environment (DESIGN.md §3).

With nothing set, the service runs on an embedded default: SQLite under ``var/`` and Celery's
filesystem transport, so ``make run`` needs no servers. Production sets DATABASE_URL, REDIS_URL
and SECRET_KEY (see docker-compose.yml).
"""

from __future__ import annotations

import datetime as dt
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from gatekeeper.env import env_bool, env_int, env_list, env_str
from gatekeeper.logs import configure_structlog, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("GATEKEEPER_VAR_DIR", str(BASE_DIR / "var")) or BASE_DIR / "var")

DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DJANGO_DEBUG is off (generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`)"
        )
    # Development only: a fixed key keeps sessions valid across restarts of `make run`.
    SECRET_KEY = "dev-insecure-key-only-for-DJANGO_DEBUG-1-never-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = (env_str("SITE_URL", "http://127.0.0.1:8000") or "").rstrip("/")
if urlparse(SITE_URL).scheme not in {"http", "https"}:
    raise ImproperlyConfigured(f"SITE_URL={SITE_URL!r} must be an http(s) URL")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_fsm",
    "pgtrigger",
    "rules.apps.AutodiscoverRulesConfig",
    "notifications",
    "programs",
    "gates",
    "integrations",
    "api",
    "dashboard",
    "axes",
]

# Operations (readiness, structured logs, metrics, CSP): kept in their own block.
INSTALLED_APPS += [
    "health_check",
    "django_structlog",
    "django_prometheus",
    "csp",
]

MIDDLEWARE = [
    # First and last of all: request count and latency include every other middleware.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # NUL and out-of-range date parts answered 400 before admin, API or views meet them.
    "gatekeeper.middleware.RefuseUnstorableInputMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
    # After authentication: binds request_id and user_id for every log line of the request.
    "django_structlog.middlewares.RequestMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "gatekeeper.urls"
WSGI_APPLICATION = "gatekeeper.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "gatekeeper" / "templates"],
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

# --- database -------------------------------------------------------------------------------
_default_sqlite = f"sqlite:///{VAR_DIR / 'gatekeeper.sqlite3'}"
_database_url = env_str("DATABASE_URL") or _default_sqlite
try:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60)}
except Exception as exc:  # dj-database-url raises several types for a malformed URL
    raise ImproperlyConfigured(f"DATABASE_URL={_database_url!r} is not a valid URL: {exc}") from exc

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Web, worker and beat write to the same file: WAL lets readers run beside the writer, and
    # IMMEDIATE takes the write lock up front so two writers queue instead of deadlocking.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # The statements a person waits on (a move, a decision) are the same few with new values
    # each time: bound on the server and, from their PREPARE_THRESHOLD-th run on a connection,
    # prepared, PostgreSQL stops re-planning them (its planning cost more than running them).
    # Off (0) for a pooler in transaction mode that cannot keep prepared statements.
    _prepare_threshold = env_int("DATABASE_PREPARE_THRESHOLD", 5, minimum=0)
    if _prepare_threshold:
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=_prepare_threshold
        )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username or address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "rules.permissions.ObjectPermissionBackend",
    "gatekeeper.auth_backends.GatekeeperModuleBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC") or "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- security (production values unless DEBUG) ----------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Container and load-balancer health probes speak plain HTTP on the inside.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# Login lockout (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one username, or
# failed sign-ins (wrong passwords and refused API tokens together) from one address, further
# attempts are refused for the cool-off time (the right password or a valid token included),
# and the admin lists the lockouts (Axes > Access attempts) so they can be cleared.
AXES_FAILURE_LIMIT = env_int("GATEKEEPER_LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("GATEKEEPER_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
# ["username", "ip_address"] for passwords, ["ip_address"] for API tokens.
AXES_LOCKOUT_PARAMETERS = "api.authentication.axes_lockout_parameters"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "gatekeeper/locked_out.html"
# The client address is the socket's unless a known number of proxies sits in front: trusting
# X-Forwarded-For from anyone would let an attacker pick a fresh "address" for every guess.
_trusted_proxies = env_int("GATEKEEPER_TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_IPWARE_PROXY_COUNT = _trusted_proxies or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if _trusted_proxies else ("REMOTE_ADDR",)
)

# --- email ----------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be on")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "gatekeeper@localhost")

# --- celery ---------------------------------------------------------------------------------
_broker = env_str("CELERY_BROKER_URL") or env_str("REDIS_URL")
if _broker:
    if urlparse(_broker).scheme not in {"redis", "rediss", "memory", "filesystem"}:
        raise ImproperlyConfigured(
            f"CELERY_BROKER_URL/REDIS_URL={_broker!r}: expected a redis:// or rediss:// URL"
        )
    CELERY_BROKER_URL = _broker
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        # Above the longest retry delay a task can sleep through (notifications back off to
        # 30 minutes at most), so an unacknowledged message is never redelivered while its
        # first worker still holds it.
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3 * 3600, minimum=60),
    }
else:
    _queue_dir = VAR_DIR / "broker"
    for sub in ("in", "processed", "control"):
        (_queue_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "in"),
        "data_folder_out": str(_queue_dir / "in"),
        "processed_folder": str(_queue_dir / "processed"),
        "store_processed": False,
        # Broadcast (pidbox) exchanges; kombu's default is ./control in the working directory.
        "control_folder": str(_queue_dir / "control"),
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- cache (API throttling) -----------------------------------------------------------------
# Shared by every web process when Redis is configured, so a budget holds across workers;
# per-process memory otherwise (the embedded default).
_cache_url = env_str("REDIS_URL")
CACHES = {
    "default": (
        {
            "BACKEND": "gatekeeper.cache.KeptRedisCache",
            "LOCATION": _cache_url,
            "KEY_PREFIX": "gatekeeper",
        }
        if _cache_url
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: an unauthenticated API call then gets 401 with `WWW-Authenticate: Token`
    # (session auth alone can only answer 403). Knox stores a SHA-512 digest, never the token.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["api.filters.FilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "api.openapi.ApiAutoSchema",
    "EXCEPTION_HANDLER": "gatekeeper.api_errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": True,
    "DEFAULT_THROTTLE_CLASSES": [
        "api.throttling.CallerRateThrottle",
        "api.throttling.WriteRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "caller": env_str("API_RATE_CALLER", "1200/min"),
        "write": env_str("API_RATE_WRITE", "120/min"),
    },
}
# Tokens are issued in the admin (or `manage.py issue_api_token`) and expire; rotate by issuing
# a new one and deleting the old row.
REST_KNOX = {
    "TOKEN_TTL": dt.timedelta(days=env_int("API_TOKEN_TTL_DAYS", 90, minimum=1)),
    "AUTO_REFRESH": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Gatekeeper API",
    "DESCRIPTION": (
        "Stage-gate workflow engine for AI initiatives. Authenticate with "
        "`Authorization: Token <token>` (tokens are issued by an administrator) or a browser "
        "session. Every error is `application/problem+json` (RFC 9457)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The schema describes every endpoint: only signed-in people read it outside development.
    "SERVE_PERMISSIONS": (
        ["rest_framework.permissions.AllowAny"]
        if DEBUG
        else ["rest_framework.permissions.IsAuthenticated"]
    ),
    "COMPONENT_SPLIT_REQUEST": True,
    # Every stage field shares one enum in the schema.
    "ENUM_NAME_OVERRIDES": {"StageEnum": "programs.stages.Stage"},
}

# --- gatekeeper -----------------------------------------------------------------------------
# Webhook endpoints on loopback/private networks are refused (SSRF) unless this is on; on by
# default in debug so a developer can point an endpoint at a local receiver.
GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool(
    "GATEKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS", DEBUG
)
GATEKEEPER = {
    # Days a milestone may stay overdue before the business owner and PMO are told.
    "MILESTONE_ESCALATION_DAYS": env_int("GATEKEEPER_MILESTONE_ESCALATION_DAYS", 3, minimum=1),
    # Business days before an approval's due date when its reminder goes out.
    "APPROVAL_REMINDER_BUSINESS_DAYS": env_int("GATEKEEPER_APPROVAL_REMINDER_DAYS", 1, minimum=0),
    "SWEEP_BATCH_SIZE": env_int("GATEKEEPER_SWEEP_BATCH_SIZE", 500, minimum=1),
    # How long a proposal may wait for its G1 review before it counts as stalled (later stages
    # take their budget from the gate template that opened them).
    "PROPOSED_MAX_DAYS": env_int("GATEKEEPER_PROPOSED_MAX_DAYS", 60, minimum=1),
    # The dashboard's pilot -> operations flow reads the whole transition history (5M records
    # at 100k initiatives: seconds). From this many initiatives in view, it is served from the
    # cache for up to the max age (the page says as of when), and beat keeps the unfiltered
    # view warm; below it, it is computed on every load.
    "DASHBOARD_FLOW_CACHE_FROM": env_int("GATEKEEPER_DASHBOARD_FLOW_CACHE_FROM", 5000, minimum=0),
    "DASHBOARD_FLOW_MAX_AGE_SECONDS": env_int(
        "GATEKEEPER_DASHBOARD_FLOW_MAX_AGE_SECONDS", 600, minimum=1
    ),
}

# --- operations: logs, metrics, content security policy ---------------------------------------
# Structured logs (gatekeeper.logs): JSON lines in production, key=value in development; every
# line carries the request id / task id, the user id and, inside a state change or delivery,
# the event type and initiative key.
configure_structlog()
LOGGING = logging_config(
    json=env_bool("GATEKEEPER_LOG_JSON", not DEBUG), level=env_str("LOG_LEVEL", "INFO") or "INFO"
)
DJANGO_STRUCTLOG_CELERY_ENABLED = True
# Celery must not replace the root handler: its lines go through the same formatter.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# /metrics (gatekeeper.metrics): served to these networks, or to a caller with the token.
GATEKEEPER_METRICS_ALLOW = env_list("GATEKEEPER_METRICS_ALLOW", ["127.0.0.0/8", "::1/128"])
for _cidr in GATEKEEPER_METRICS_ALLOW:
    try:
        ip_network(_cidr, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"GATEKEEPER_METRICS_ALLOW: {_cidr!r} is not a CIDR") from exc
GATEKEEPER_METRICS_TOKEN = env_str("GATEKEEPER_METRICS_TOKEN", "") or ""
GATEKEEPER_METRICS_COLLECTORS = ["notifications.metrics.DeliveryBacklogCollector"]
# A worker has no web server: with this set it serves its own metrics (sweeps) on this port.
GATEKEEPER_WORKER_METRICS_PORT = env_int("GATEKEEPER_WORKER_METRICS_PORT", 0, minimum=0)

# Content-Security-Policy (django-csp): nothing from elsewhere, no inline script (the Swagger
# UI's init script is served as a file by SpectacularSwaggerSplitView). Inline *styles* are
# allowed because Redoc and Swagger UI inject theirs at run time; Redoc's search runs in a
# blob: worker, and both draw icons from data: URIs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "worker-src": [SELF, "blob:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
