"""GoChat settings: everything comes from the environment, with local defaults
that work on a development machine (MySQL root@127.0.0.1, Redis, the embedded
Apache Kafka broker). Every variable is documented in README.md."""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from gochat_project import secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# Off unless asked for: debug pages show settings and the URL configuration to any client.
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# DJANGO_SECRET_KEY, or the file GOCHAT_SECRET_KEY_FILE names, or one generated on the
# first start and kept in .run/secret_key; a key known to be public is refused.
SECRET_KEY, GOCHAT_SECRET_KEY_SOURCE = secret_key.load(dict(os.environ), BASE_DIR / ".run" / "secret_key")

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

# --- HTTPS (production) ---------------------------------------------------
# Off by default, so `make run` serves plain http on 127.0.0.1. GOCHAT_HTTPS=1 when
# clients reach GoChat over https: http requests are redirected, cookies are
# https-only, browsers are told to use https only (HSTS). Behind a proxy that
# terminates TLS, also GOCHAT_PROXY_SSL_HEADER=1 (it must set X-Forwarded-Proto).
GOCHAT_HTTPS = env.bool("GOCHAT_HTTPS", default=False)
if GOCHAT_HTTPS:
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # probes inside the network
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("GOCHAT_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("GOCHAT_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("GOCHAT_HSTS_PRELOAD", default=True)  # the directive; submitting the domain is yours
if env.bool("GOCHAT_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many reverse proxies stand in front of the gateways (nginx: 1). 0, the default:
# the client's address is the socket's and X-Forwarded-For is ignored, because any
# client can write it. N: the address the N-th proxy from here saw, i.e. the N-th entry
# from the right of X-Forwarded-For (gochat_project/client_address.py). Every throttle
# and log line uses that one address.
GOCHAT_TRUSTED_PROXIES = env.int("GOCHAT_TRUSTED_PROXIES", default=0)

# --- GoChat ---------------------------------------------------------------
GOCHAT_REDIS_URL = env.str("GOCHAT_REDIS_URL", default="redis://127.0.0.1:6379/0")
# A Redis Cluster instead of one Redis: GOCHAT_REDIS_URL then names any of its nodes
# (database 0), and `services up` starts a three-node cluster when that is on loopback.
GOCHAT_REDIS_CLUSTER = env.bool("GOCHAT_REDIS_CLUSTER", default=False)
# Conversations hash into this many slot groups; each has its own fence (epoch marker).
# 64 groups spread over a 3-node cluster's 16,384 slots still land on every node, and a
# batch of 1,000 sends costs at most 64 script calls, pipelined per node. Changing it
# moves every counter: logic then fences and reseeds from MySQL, as after a loss.
GOCHAT_REDIS_SEQ_BUCKETS = env.int("GOCHAT_REDIS_SEQ_BUCKETS", default=64)
# Unset: the embedded Apache Kafka broker on 127.0.0.1:9092, which `manage.py services up`
# installs and starts. Set: your cluster's bootstrap servers (comma-separated).
GOCHAT_KAFKA_BOOTSTRAP = env.str("GOCHAT_KAFKA_BOOTSTRAP", default="")
KAFKA_BOOTSTRAP = GOCHAT_KAFKA_BOOTSTRAP or "127.0.0.1:9092"
# Whether `services up` runs the embedded broker(s) on KAFKA_BOOTSTRAP's loopback ports
# (the test suite sets it with its own bootstrap); off for a cluster of your own.
GOCHAT_KAFKA_EMBEDDED = env.bool("GOCHAT_KAFKA_EMBEDDED", default=not GOCHAT_KAFKA_BOOTSTRAP)
# Topics: `services up` creates missing ones unless told the operator does; -1 replicates
# each as the cluster's default.replication.factor says (3 on the embedded 3-node cluster).
GOCHAT_KAFKA_CREATE_TOPICS = env.bool("GOCHAT_KAFKA_CREATE_TOPICS", default=True)
GOCHAT_KAFKA_REPLICATION_FACTOR = env.int("GOCHAT_KAFKA_REPLICATION_FACTOR", default=-1)


def kafka_client_settings(environment: dict[str, str]) -> dict[str, str]:
    """librdkafka settings every producer, consumer and admin client gets (Celery's
    included): security, SASL, TLS and client id from their own variables, and any other
    setting from GOCHAT_KAFKA_CONFIG ("key=value;key=value")."""
    named = {
        "GOCHAT_KAFKA_SECURITY_PROTOCOL": "security.protocol",
        "GOCHAT_KAFKA_SASL_MECHANISM": "sasl.mechanism",
        "GOCHAT_KAFKA_SASL_USERNAME": "sasl.username",
        "GOCHAT_KAFKA_SASL_PASSWORD": "sasl.password",
        "GOCHAT_KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
        "GOCHAT_KAFKA_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
        "GOCHAT_KAFKA_SSL_KEY_LOCATION": "ssl.key.location",
        "GOCHAT_KAFKA_SSL_KEY_PASSWORD": "ssl.key.password",
        "GOCHAT_KAFKA_CLIENT_ID": "client.id",
    }
    config = {key: environment[var] for var, key in named.items() if environment.get(var)}
    for item in environment.get("GOCHAT_KAFKA_CONFIG", "").split(";"):
        if item.strip():
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ImproperlyConfigured(f"GOCHAT_KAFKA_CONFIG: {item!r} is not key=value")
            config[key.strip()] = value.strip()
    return config


KAFKA_CLIENT_SETTINGS = kafka_client_settings(dict(os.environ))
# The embedded broker (gochat_project/ops/kafka_broker.py): JVM heap, and retention per
# partition by time and size so that a broker left running for weeks stays flat.
GOCHAT_KAFKA_HEAP = env.str("GOCHAT_KAFKA_HEAP", default="512m")
# Where Maven puts the broker's jars (resolved again when kafka/pom.xml changes).
GOCHAT_KAFKA_LIBS = env.str("GOCHAT_KAFKA_LIBS", default=str(BASE_DIR / ".run" / "kafka" / "libs"))
GOCHAT_KAFKA_RETENTION_HOURS = env.int("GOCHAT_KAFKA_RETENTION_HOURS", default=24)
GOCHAT_KAFKA_RETENTION_BYTES = env.int("GOCHAT_KAFKA_RETENTION_BYTES", default=256 * 1024 * 1024)
GOCHAT_TOPIC_PREFIX = env.str("GOCHAT_TOPIC_PREFIX", default="gochat")
# Redis keys share the topic prefix so a test run never touches a live one.
GOCHAT_REDIS_PREFIX = env.str("GOCHAT_REDIS_PREFIX", default=GOCHAT_TOPIC_PREFIX + ":")
GOCHAT_GATEWAY_ID = env.str("GOCHAT_GATEWAY_ID", default="gw1")
# Up to this many logic consumers (docs/operations.md sizes it; `kafka_topics alter` adds more).
GOCHAT_UPSTREAM_PARTITIONS = env.int("GOCHAT_UPSTREAM_PARTITIONS", default=1)
# How long a gateway gathers sends into one upstream Kafka batch (docs/benchmarks.md).
GOCHAT_UPSTREAM_LINGER_MS = env.float("GOCHAT_UPSTREAM_LINGER_MS", default=10.0)
# Celery workers commit the offsets of acked tasks together, at most this often
# (gochat_project/infra/kombu_kafka.py; 0: on every ack, as kombu does).
GOCHAT_CELERY_COMMIT_INTERVAL_MS = env.int("GOCHAT_CELERY_COMMIT_INTERVAL_MS", default=200)
GOCHAT_PERSIST_PARTITIONS = env.int("GOCHAT_PERSIST_PARTITIONS", default=1)
GOCHAT_FANOUT_PARTITIONS = env.int("GOCHAT_FANOUT_PARTITIONS", default=1)
GOCHAT_DOWNSTREAM_PARTITIONS = env.int("GOCHAT_DOWNSTREAM_PARTITIONS", default=1)
GOCHAT_GATEWAY_IDS = env.list("GOCHAT_GATEWAY_IDS", default=[GOCHAT_GATEWAY_ID])
GOCHAT_PRESENCE_TTL_S = env.int("GOCHAT_PRESENCE_TTL_S", default=60)
GOCHAT_HEARTBEAT_S = env.int("GOCHAT_HEARTBEAT_S", default=20)
GOCHAT_WS_SEND_RATE = env.float("GOCHAT_WS_SEND_RATE", default=50.0)  # sends/s per user
GOCHAT_WS_SEND_BURST = env.int("GOCHAT_WS_SEND_BURST", default=200)
# Every other frame (sync, read, recall, typing, ping, auth), per connection.
GOCHAT_WS_FRAME_RATE = env.float("GOCHAT_WS_FRAME_RATE", default=20.0)
GOCHAT_WS_FRAME_BURST = env.int("GOCHAT_WS_FRAME_BURST", default=100)
GOCHAT_WS_MAX_CONNECTIONS = env.int("GOCHAT_WS_MAX_CONNECTIONS", default=10)  # per user; the oldest is closed
GOCHAT_RECENT_CACHE_SIZE = env.int("GOCHAT_RECENT_CACHE_SIZE", default=200)
GOCHAT_RECENT_CACHE_TTL_S = env.int("GOCHAT_RECENT_CACHE_TTL_S", default=3600)
GOCHAT_MAX_REQUEST_BYTES = env.int("GOCHAT_MAX_REQUEST_BYTES", default=64 * 1024)
GOCHAT_LOG_JSON = env.bool("GOCHAT_LOG_JSON", default=False)

# --- Django ---------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc as static files (no CDN)
    "channels",
    "gochat_project",
    "accounts",
    "groups",
    "messaging",
    "uploads",
    "fanout",
]

MIDDLEWARE = [
    "gochat_project.access_log.AccessLogMiddleware",  # first: it times and logs every answer, 413s included
    "gochat_project.middleware.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # /static/ from STATIC_ROOT, answered before sessions, CSRF and auth run.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gochat_project.urls"
WSGI_APPLICATION = "gochat_project.wsgi.application"
ASGI_APPLICATION = "gochat_project.asgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {
    "default": env.db_url(
        "GOCHAT_DATABASE_URL", default="mysql://root@127.0.0.1:3306/gochat"
    )
}
DATABASES["default"].setdefault("OPTIONS", {}).update(
    {"charset": "utf8mb4", "init_command": "SET sql_mode='STRICT_TRANS_TABLES'"}
)
DATABASES["default"]["CONN_MAX_AGE"] = env.int("GOCHAT_DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The test run points GOCHAT_DATABASE_URL at its own database and uses it as is.
DATABASES["default"]["TEST"] = {"NAME": DATABASES["default"]["NAME"], "CHARSET": "utf8mb4"}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# --- Static files (the admin's, Swagger UI's and ReDoc's) ---------------------
# `manage.py collectstatic --noinput` copies them into STATIC_ROOT with a content hash in
# each name, plus a gzip copy (brotli too if the brotli package is installed), and writes
# the manifest that `{% static %}` reads: without it, admin and API-docs pages answer 500.
# `make run` and the test session run it before any gateway starts; WhiteNoise (in
# MIDDLEWARE) serves what it finds there at start-up, hashed names with a one-year
# immutable Cache-Control, the others for 60 s (docs/operations.md, "Static files").
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("GOCHAT_STATIC_ROOT", default=str(BASE_DIR / ".run" / "static")))
if not STATIC_ROOT.is_absolute():
    STATIC_ROOT = BASE_DIR / STATIC_ROOT
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- REST -----------------------------------------------------------------
RENDERERS = ["rest_framework.renderers.JSONRenderer"]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": RENDERERS,
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "gochat_project.api.schema.GoChatAutoSchema",
    "EXCEPTION_HANDLER": "gochat_project.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "auth_ip": env.str("GOCHAT_THROTTLE_AUTH", default="30/min"),
        "user": env.str("GOCHAT_THROTTLE_USER", default="600/min"),
        "uploads": env.str("GOCHAT_THROTTLE_UPLOADS", default="60/min"),
    },
    "UNAUTHENTICATED_USER": None,
    # REMOTE_ADDR is already the client's address (gochat_project/client_address.py):
    # DRF must not read X-Forwarded-For again.
    "NUM_PROXIES": 0,
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = [*RENDERERS, "rest_framework.renderers.BrowsableAPIRenderer"]

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("GOCHAT_ACCESS_TOKEN_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("GOCHAT_REFRESH_TOKEN_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "GoChat API",
    "DESCRIPTION": "REST side of the GoChat protocol (see docs/protocol.md).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from drf-spectacular-sidecar's static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "MessageKindEnum": ["custom", "file", "image", "text"],
        "ConversationKindEnum": ["single", "group"],
    },
}

CACHES = {
    "default": {
        # Django's RedisCache on GoChat's own client, so it works on a Redis Cluster too.
        "BACKEND": "gochat_project.infra.redis_client.SharedRedisCache",
        "LOCATION": GOCHAT_REDIS_URL,
        "KEY_PREFIX": GOCHAT_REDIS_PREFIX + "cache",
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "gochat_project.ops.logs.JsonFormatter"},
    },
    "filters": {"request_id": {"()": "gochat_project.access_log.RequestIdFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if GOCHAT_LOG_JSON else "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("GOCHAT_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per task received/succeeded costs the workers CPU on the hot path.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
    },
}

GOCHAT_LARGE_GROUP_THRESHOLD = env.int("GOCHAT_LARGE_GROUP_THRESHOLD", default=500)
GOCHAT_FANOUT_CHUNK = env.int("GOCHAT_FANOUT_CHUNK", default=1000)
GOCHAT_RECALL_WINDOW_S = env.int("GOCHAT_RECALL_WINDOW_S", default=120)
GOCHAT_EDIT_WINDOW_S = env.int("GOCHAT_EDIT_WINDOW_S", default=3600)  # a sender edits a text message within it
GOCHAT_TYPING_INTERVAL_S = env.float("GOCHAT_TYPING_INTERVAL_S", default=3.0)

# --- Uploads (attachments) ---------------------------------------------------
GOCHAT_MAX_UPLOAD_BYTES = env.int("GOCHAT_MAX_UPLOAD_BYTES", default=10 * 1024 * 1024)
GOCHAT_UPLOAD_MAX_AGE_HOURS = env.int("GOCHAT_UPLOAD_MAX_AGE_HOURS", default=24)  # unsent uploads, for cleanup_uploads
# Local files by default; GOCHAT_STORAGE=s3 stores through django-storages' S3 backend
# (any S3-compatible service; needs boto3). Downloads always pass through GoChat's
# authorization check, never a public bucket URL.
MEDIA_ROOT = Path(env.str("GOCHAT_MEDIA_ROOT", default=str(BASE_DIR / ".run" / "media")))
if not MEDIA_ROOT.is_absolute():
    MEDIA_ROOT = BASE_DIR / MEDIA_ROOT
GOCHAT_STORAGE = env.str("GOCHAT_STORAGE", default="filesystem")
if GOCHAT_STORAGE == "filesystem":
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage",
                        "OPTIONS": {"location": MEDIA_ROOT, "base_url": None, "file_permissions_mode": 0o640,
                                    "directory_permissions_mode": 0o750}}
elif GOCHAT_STORAGE == "s3":
    _default_storage = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": env.str("GOCHAT_S3_BUCKET"),
        "endpoint_url": env.str("GOCHAT_S3_ENDPOINT_URL", default="") or None,
        "region_name": env.str("GOCHAT_S3_REGION", default="") or None,
        "access_key": env.str("GOCHAT_S3_ACCESS_KEY_ID", default="") or None,
        "secret_key": env.str("GOCHAT_S3_SECRET_ACCESS_KEY", default="") or None,
        "location": env.str("GOCHAT_S3_PREFIX", default="gochat"),
        "default_acl": "private",
        "querystring_auth": True,
        "file_overwrite": False,
    }}
else:
    raise ImproperlyConfigured(f"GOCHAT_STORAGE must be 'filesystem' or 's3', not {GOCHAT_STORAGE!r}")
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Multipart files above this stay in a temporary file while a request is parsed, not in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
