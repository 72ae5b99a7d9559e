"""Settings for the image registry, read from the environment only.

Every variable is documented in the README. A bad value stops start-up with an
ImproperlyConfigured error that names the variable, so an operator never runs
with a silently wrong configuration.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from glance_site.environment import (
    NOTIFICATION_DRIVERS,
    env_bool,
    env_choices,
    env_int,
    env_list,
    env_rate,
    env_size,
    keystone_authtoken,
    notification_transport_url,
    web_download_hosts,
    web_download_ports,
    web_download_schemes,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))

_DISK_FORMATS = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
_IMPORT_METHODS = ["glance-direct", "web-download"]

DEBUG = env_bool("DJANGO_DEBUG", False)

# `make run` writes a development secret to var/secret_key; `manage.py` run by hand in
# the same checkout (create_token, restore_image) finds it there and serves loopback
# only. A production deployment has no such file and must set SECRET_KEY.
DEVELOPMENT_SECRET = VAR_DIR / "secret_key"
SECRET_KEY = os.environ.get("SECRET_KEY", "")
LOCAL_DEVELOPMENT = DEBUG
if not SECRET_KEY and DEVELOPMENT_SECRET.is_file():
    SECRET_KEY = DEVELOPMENT_SECRET.read_text().strip()
    LOCAL_DEVELOPMENT = True
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set; `make run` generates one under var/, "
            "production must set it (or set DJANGO_DEBUG=1 for development)"
        )
    SECRET_KEY = "insecure-development-key"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if LOCAL_DEVELOPMENT else [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS is not set (a comma-separated list of host names)")

# Production behind HTTPS (README, "Production"). Off by default, so `make run`
# serves plain http://127.0.0.1:8000.
HTTPS = env_bool("DJANGO_HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
if env_bool("DJANGO_SECURE_PROXY", False):
    # Only behind a proxy that terminates TLS and overwrites this header: a client
    # could otherwise claim https itself.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",
    "django_tasks_db",
    "images",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "images.api.middleware.RejectNulMiddleware",
]

ROOT_URLCONF = "glance_site.urls"
WSGI_APPLICATION = "glance_site.wsgi.application"

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

_default_db = f"sqlite:///{VAR_DIR / 'registry.sqlite3'}"
if "DATABASE_URL" not in os.environ:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
# A new PostgreSQL connection per request costs more than most requests do.
_conn_max_age = env_int("DATABASE_CONN_MAX_AGE", 60)
try:
    DATABASES = {
        "default": dj_database_url.parse(
            os.environ.get("DATABASE_URL", _default_db),
            conn_max_age=_conn_max_age,
            conn_health_checks=True,
        )
    }
except Exception as exc:  # dj-database-url raises several types for a malformed URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE makes every transaction take SQLite's write lock up front, so two
    # writers queue instead of failing with "database is locked" halfway through.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
WHITENOISE_AUTOREFRESH = DEBUG

IMAGES_STORE = Path(os.environ.get("IMAGES_STORE", VAR_DIR / "images"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
    "images": {
        "BACKEND": os.environ.get(
            "IMAGES_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage"
        ),
        "OPTIONS": {"location": str(IMAGES_STORE), "file_permissions_mode": 0o640},
    },
}

# An S3-compatible object store (Ceph RGW, MinIO, AWS S3) instead of the filesystem.
# Credentials: IMAGES_S3_ACCESS_KEY/IMAGES_S3_SECRET_KEY, else boto3's usual chain.
IMAGES_S3_BUCKET = os.environ.get("IMAGES_S3_BUCKET", "")
if IMAGES_S3_BUCKET:
    from boto3.s3.transfer import TransferConfig

    # boto3's defaults hold up to ~160 MiB of one upload in memory; this keeps it near 32.
    _transfer = TransferConfig(max_concurrency=4, multipart_chunksize=8 * 2**20)
    _transfer.max_in_memory_upload_chunks = 2
    STORAGES["images"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": IMAGES_S3_BUCKET,
            "location": os.environ.get("IMAGES_S3_PREFIX", ""),
            "endpoint_url": os.environ.get("IMAGES_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("IMAGES_S3_REGION") or None,
            "access_key": os.environ.get("IMAGES_S3_ACCESS_KEY") or None,
            "secret_key": os.environ.get("IMAGES_S3_SECRET_KEY") or None,
            "signature_version": "s3v4",
            "file_overwrite": True,  # an image's object name is its id: never renamed
            "default_acl": None,
            # A download spools at most this much in memory, the rest in a temp file.
            "max_memory_size": 8 * 2**20,
            "transfer_config": _transfer,
        },
    }

# Ceph RBD (README "Ceph"): one RBD image per image, snapshot `snap` protected for
# Nova and Cinder to clone, as Glance's rbd store. Needs python3-rados/python3-rbd.
IMAGES_RBD_POOL = os.environ.get("IMAGES_RBD_POOL", "")
# How to reach Ceph: the RBD store's, and import_glance's for Glance's rbd:// locations
# (which it can copy into any store).
IMAGES_RBD_CLIENT = {
    "conffile": os.environ.get("IMAGES_RBD_CEPH_CONF", "/etc/ceph/ceph.conf"),
    "user": os.environ.get("IMAGES_RBD_USER", "admin"),
    "keyring": os.environ.get("IMAGES_RBD_KEYRING") or None,
    "connect_timeout": env_int("IMAGES_RBD_CONNECT_TIMEOUT", 10, minimum=1),
    # An operation Ceph does not answer in time fails the request (503).
    "op_timeout": env_int("IMAGES_RBD_OP_TIMEOUT", 60, minimum=1),
}
if IMAGES_RBD_POOL:
    if IMAGES_S3_BUCKET:
        raise ImproperlyConfigured("Set IMAGES_RBD_POOL or IMAGES_S3_BUCKET, not both.")
    STORAGES["images"] = {
        "BACKEND": "images.rbd_store.RBDStorage",
        "OPTIONS": {"pool": IMAGES_RBD_POOL, **IMAGES_RBD_CLIENT},
    }

IMAGES_DELAYED_DELETE = env_bool("IMAGES_DELAYED_DELETE", True)
IMAGES_SCRUB_DELAY_SECONDS = env_int("IMAGES_SCRUB_DELAY_SECONDS", 86400)
IMAGES_SCRUB_WAKEUP_SECONDS = env_int("IMAGES_SCRUB_WAKEUP_SECONDS", 300, minimum=1)
# Every node may run a scrubber: an image's scrub is claimed (SELECT ... FOR UPDATE SKIP
# LOCKED) and the others leave it alone for this long. Longer than a batch of 200
# removals can take; a scrubber renews its claims while it works. A claim this old was
# left by a scrubber that died, and another takes the image over.
IMAGES_SCRUB_CLAIM_SECONDS = env_int("IMAGES_SCRUB_CLAIM_SECONDS", 3600, minimum=1)
IMAGES_PURGE_AFTER_DAYS = env_int("IMAGES_PURGE_AFTER_DAYS", 30)
IMAGES_SIZE_CAP = env_size("IMAGES_SIZE_CAP", 2**40)
IMAGES_USER_STORAGE_QUOTA = env_size("IMAGES_USER_STORAGE_QUOTA", 0)
IMAGES_UPLOAD_STALE_SECONDS = env_int("IMAGES_UPLOAD_STALE_SECONDS", 3600, minimum=1)
# Format inspection (images/inspection.py), with Glance's [image_format] options.
IMAGES_REQUIRE_FORMAT_MATCH = env_bool("IMAGES_REQUIRE_FORMAT_MATCH", True)
IMAGES_DISK_FORMATS = env_choices("IMAGES_DISK_FORMATS", _DISK_FORMATS, _DISK_FORMATS)
IMAGES_GPT_SAFETY_CHECKS_NONFATAL = env_choices(
    "IMAGES_GPT_SAFETY_CHECKS_NONFATAL", ["mbr", "gptmbr"], []
)
# Interoperable import (README "Import"): the work runs in `manage.py db_worker`
# processes (django-tasks, its queue in this database), the task records Glance
# clients read expire after IMAGES_TASK_TIME_TO_LIVE_HOURS (Glance's 48), and an
# import whose worker stopped reporting for IMAGES_IMPORT_STALE_SECONDS is undone.
IMAGES_IMPORT_METHODS = env_choices("IMAGES_IMPORT_METHODS", _IMPORT_METHODS, _IMPORT_METHODS)
IMAGES_TASK_TIME_TO_LIVE_HOURS = env_int("IMAGES_TASK_TIME_TO_LIVE_HOURS", 48, minimum=1)
IMAGES_IMPORT_STALE_SECONDS = env_int("IMAGES_IMPORT_STALE_SECONDS", 300, minimum=1)
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# Interoperable import's conversion (images/conversion.py), Glance's [image_conversion]
# output_format: one of the formats its plugin writes that the registry accepts, e.g.
# raw for Ceph; empty converts nothing.
_CONVERT_TARGETS = [f for f in ("raw", "qcow2", "vmdk") if f in IMAGES_DISK_FORMATS]
IMAGES_IMPORT_CONVERT_TO = os.environ.get("IMAGES_IMPORT_CONVERT_TO", "").strip()
if IMAGES_IMPORT_CONVERT_TO and IMAGES_IMPORT_CONVERT_TO not in _CONVERT_TARGETS:
    raise ImproperlyConfigured(
        f"IMAGES_IMPORT_CONVERT_TO must be empty or one of {', '.join(_CONVERT_TARGETS)} "
        f"(written by qemu-img and in IMAGES_DISK_FORMATS), got {IMAGES_IMPORT_CONVERT_TO!r}"
    )
IMAGES_QEMU_IMG = os.environ.get("IMAGES_QEMU_IMG", "qemu-img")
# What web-download may fetch (images/remote.py), Glance's [import_filtering_opts]: an
# allow list, when set, wins over its deny list; ALLOWED_HOSTS also admits private hosts.
IMAGES_WEB_DOWNLOAD_ALLOWED_SCHEMES = web_download_schemes(
    "IMAGES_WEB_DOWNLOAD_ALLOWED_SCHEMES", ["http", "https"]
)
IMAGES_WEB_DOWNLOAD_DISALLOWED_SCHEMES = web_download_schemes(
    "IMAGES_WEB_DOWNLOAD_DISALLOWED_SCHEMES", []
)
IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS = web_download_ports(
    "IMAGES_WEB_DOWNLOAD_ALLOWED_PORTS", [80, 443]
)
IMAGES_WEB_DOWNLOAD_DISALLOWED_PORTS = web_download_ports(
    "IMAGES_WEB_DOWNLOAD_DISALLOWED_PORTS", []
)
IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS = web_download_hosts("IMAGES_WEB_DOWNLOAD_ALLOWED_HOSTS")
IMAGES_WEB_DOWNLOAD_DISALLOWED_HOSTS = web_download_hosts("IMAGES_WEB_DOWNLOAD_DISALLOWED_HOSTS")
# Seconds to connect, and to wait for each read: a stalled server, not a slow download.
IMAGES_WEB_DOWNLOAD_TIMEOUT = env_int("IMAGES_WEB_DOWNLOAD_TIMEOUT", 60, minimum=1)
# Per user (per address when anonymous) and server process; far above what the glance
# CLI, `make soak` or the tests send.
IMAGES_API_RATE = env_rate("IMAGES_API_RATE", "6000/m")
IMAGES_API_ANON_RATE = env_rate("IMAGES_API_ANON_RATE", "600/m")

# Glance's show_multiple_locations and show_image_direct_url, off by default as there:
# a location's URL may carry the credentials of the store behind it. On, those who may
# read an image's locations see `locations` (and may PATCH them: Glance refuses
# location changes while they are hidden) or `direct_url`.
IMAGES_SHOW_MULTIPLE_LOCATIONS = env_bool("IMAGES_SHOW_MULTIPLE_LOCATIONS", False)
IMAGES_SHOW_DIRECT_URL = env_bool("IMAGES_SHOW_DIRECT_URL", False)

# Notifications as Glance sends them (images/events.py), through oslo.messaging: its
# notification drivers, transport URL and topics, as Glance's [oslo_messaging_notifications].
IMAGES_NOTIFICATION_DRIVER = env_choices(
    "IMAGES_NOTIFICATION_DRIVER", NOTIFICATION_DRIVERS, ["noop"]
)
IMAGES_NOTIFICATION_TRANSPORT_URL = notification_transport_url(
    "IMAGES_NOTIFICATION_TRANSPORT_URL", IMAGES_NOTIFICATION_DRIVER
)
IMAGES_NOTIFICATION_TOPICS = env_list("IMAGES_NOTIFICATION_TOPICS", ["notifications"]) or [
    "notifications"
]
IMAGES_NOTIFICATION_PUBLISHER_ID = os.environ.get(
    "IMAGES_NOTIFICATION_PUBLISHER_ID", "image.localhost"
)
# Attempts after the first to reach the bus for one event (oslo.messaging's `retry`;
# never -1, "forever": the sender must move on), and how many events a process keeps
# waiting for the bus before it drops new ones.
IMAGES_NOTIFICATION_RETRY = env_int("IMAGES_NOTIFICATION_RETRY", 1)
IMAGES_NOTIFICATION_QUEUE = env_int("IMAGES_NOTIFICATION_QUEUE", 10000, minimum=1)
IMAGES_DISABLED_NOTIFICATIONS = env_list("IMAGES_DISABLED_NOTIFICATIONS", [])


# Keystone mode (README "Keystone"): tokens validated by keystonemiddleware, rights by
# Glance's policy rules. Off unless KEYSTONE_AUTH_URL (or the config file) is set.
KEYSTONE_AUTHTOKEN = keystone_authtoken()
KEYSTONE_AUTH_URL = KEYSTONE_AUTHTOKEN["www_authenticate_uri"] if KEYSTONE_AUTHTOKEN else ""
# Keystone roles -> the admin's groups, for staff signing in with Keystone credentials.
KEYSTONE_ROLE_GROUPS = dict(
    pair.split(":", 1)
    for pair in env_list(
        "KEYSTONE_ROLE_GROUPS", ["admin:Image administrators", "image_recovery:Recovery staff"]
    )
)
# An operator's policy.yaml over Glance's defaults (images/glance_rules.py).
IMAGES_POLICY_FILE = (
    Path(os.environ["IMAGES_POLICY_FILE"]) if os.environ.get("IMAGES_POLICY_FILE") else None
)
if IMAGES_POLICY_FILE is not None and not IMAGES_POLICY_FILE.is_file():
    raise ImproperlyConfigured(f"IMAGES_POLICY_FILE {IMAGES_POLICY_FILE} is not a file")
if KEYSTONE_AUTHTOKEN:
    AUTHENTICATION_BACKENDS = ["images.keystone_accounts.KeystoneBackend"]

REST_FRAMEWORK = {
    # Token first: Glance clients send X-Auth-Token, and an unauthenticated client
    # gets 401 with a WWW-Authenticate header rather than a bare 403. In Keystone mode
    # X-Auth-Token is a Keystone token, checked by keystonemiddleware.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "images.api.auth.KeystoneAuthentication"
        if KEYSTONE_AUTHTOKEN
        else "images.api.auth.GlanceTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "images.api.renderers.RegistryBrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["images.api.parsers.GlanceJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "images.api.renderers.LenientContentNegotiation",
    "EXCEPTION_HANDLER": "images.api.errors.glance_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "images.api.throttles.UserThrottle",
        "images.api.throttles.AnonThrottle",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Image registry API",
    "DESCRIPTION": "The OpenStack Glance Image API v2, as this registry serves it.",
    "VERSION": "2.7",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI from the sidecar package: served locally, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "images.api.openapi.postprocess",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "images": {"handlers": ["console"], "level": "INFO"},
        # Django logs a 500's traceback here; its default handler prints only with DEBUG.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        # Every inspector sees every upload, so each one logs (at ERROR) the bytes it
        # cannot parse, i.e. every format an image is not. The refusals that matter
        # are in the image's history and the API's answer.
        "oslo_utils.imageutils.format_inspector": {"level": "CRITICAL", "propagate": False},
    },
}
