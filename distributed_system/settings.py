"""Settings for distributed_system: four databases, one router, the admin, the dashboard, the API.

Everything a deployment changes comes from the environment; the defaults suit a developer's machine.
"""

import math
import os
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from data_insertion.topology.databases import configured_databases
from data_insertion.topology.shards import configured_shard_counts
from data_insertion.topology.shared_cache import SHARED_CACHE, URL_SCHEMES, cache_settings

BASE_DIR = Path(__file__).resolve().parent.parent

# The three SQLite files (and Django's own default.db) live here; tests point it at a temporary
# directory so they never touch a user's data.
DATA_DIR = Path(os.environ.get("DS_DATA_DIR") or BASE_DIR).resolve()


def _env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_number(name: str, default: float, minimum: float, number: type = int) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = number(text)
        if not math.isfinite(value):
            raise ValueError(text)
    except ValueError:
        kind = "a whole number" if number is int else "a finite number"
        raise ImproperlyConfigured(f"{name}={text!r} is not {kind}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}")
    return value


# A development key: `check --deploy` flags it, and any deployment sets DJANGO_SECRET_KEY.
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY",
    "django-insecure-development-only-key-set-DJANGO_SECRET_KEY-in-production",
)
DEBUG = _env_flag("DJANGO_DEBUG")
# Behind HTTPS (a deployment of the admin), DJANGO_HTTPS=1 turns on what `check --deploy`
# asks for: redirect to HTTPS, secure cookies, and HSTS (its duration can be shortened while
# trying it out: DJANGO_HSTS_SECONDS).
HTTPS = _env_flag("DJANGO_HTTPS")
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = _env_number("DJANGO_HSTS_SECONDS", 31_536_000, minimum=0) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if _env_flag("DJANGO_BEHIND_PROXY") else None
)

ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if host.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # runserver leaves static files to WhiteNoise, so they are served as in production.
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    # the API's interactive docs page, from its own static files (no CDN)
    "ninja",
    "data_insertion",
    "data_insertion.runs",
    "data_insertion.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The admin's CSS and JavaScript, from STATIC_ROOT: Django serves static files only with
    # DEBUG on, and only under runserver.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "distributed_system.urls"

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

WSGI_APPLICATION = "distributed_system.wsgi.application"


# How long a SQLite transaction waits for another process's write lock before "database is
# locked" (then the service retries a few times with backoff).
SQLITE_TIMEOUT_SECONDS = _env_number("DS_SQLITE_TIMEOUT", 30.0, minimum=0.0, number=float)
# The most connections this process opens to one server database (PostgreSQL or MariaDB): one
# for the main thread (migrations, counts), the rest shared by the threads that write, each
# holding one only for the length of a transaction (data_insertion.topology.connections).
# SQLite files are not servers and have no such limit.
MAX_CONNECTIONS_PER_DATABASE = _env_number("DS_MAX_CONNECTIONS_PER_DATABASE", 20, minimum=2)

# How many databases each model is sharded over (DS_SHARDS, USERS_SHARDS, ...): 1 keeps
# users_db; N gives users_db_0 ... users_db_{N-1}, until a shard map in default says otherwise.
SHARD_COUNTS = configured_shard_counts(os.environ)

# Every alias the topology knows (data_insertion.topology), each a SQLite file in DATA_DIR or
# a server named by its *_DATABASE_URL.
DATABASES = configured_databases(
    os.environ, DATA_DIR, SQLITE_TIMEOUT_SECONDS, MAX_CONNECTIONS_PER_DATABASE
)

DATABASE_ROUTERS = ["distributed_system.routers.ModelDatabaseRouter"]

# A cache shared by every process and machine (Redis, through Django's RedisCache), for the
# order checks' "this user / product exists" (data_insertion.reference_cache); unset: none.
CACHE_URL = os.environ.get("DS_CACHE_URL", "").strip()
# How long a cached "exists" lives: the longest a delete made outside Django stays unseen.
REFERENCE_CACHE_TTL_SECONDS = _env_number("DS_CACHE_TTL", 300, minimum=1)
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if CACHE_URL:
    if urlsplit(CACHE_URL).scheme not in URL_SCHEMES:
        raise ImproperlyConfigured("DS_CACHE_URL must be a redis://, rediss:// or unix:// URL")
    CACHES[SHARED_CACHE] = cache_settings(CACHE_URL, DATABASES)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# Messages are in English. With translation on, every message looks up the active language in
# a lock-protected thread-local, which hundreds of threads turn into a queue (measured: 45% of a
# run's time went there).
USE_I18N = False
USE_TZ = True

# Runs started from the dashboard or the API: "process" runs each in a background process
# (manage.py execute_run), "thread" in a thread of the server's process (the tests, whose
# databases only that process knows).
RUN_EXECUTOR = os.environ.get("DS_RUN_EXECUTOR", "process")
if RUN_EXECUTOR not in {"process", "thread"}:
    raise ImproperlyConfigured(f"DS_RUN_EXECUTOR={RUN_EXECUTOR!r} is not process or thread")

# The dashboard is for staff accounts, who sign in on the admin's login page.
LOGIN_URL = "admin:login"

STATIC_URL = "static/"
# Filled by `collectstatic` (setup.sh, setup.bat). Django's plain storage: the manifest storage's
# hashed names would turn every admin page into an error until collectstatic had run.
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Celery (a run's slices on workers, --celery): `celery -A distributed_system worker` reads
# these through distributed_system/celery.py. No result backend: a slice leaves its tally in the
# default database, which every worker shares with the run. A slice is acknowledged when it
# ends, so the broker delivers it again if its worker dies (engine/executor.py runs a delivery
# once); one slice at a time per worker process, as prefetching would pile slices on one.
CELERY_BROKER_URL = os.environ.get("DS_CELERY_BROKER_URL", "").strip() or None
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("DS_CELERY_QUEUE", "").strip() or "distributed_system"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A spread run's slice whose executor stops beating this long is given to another executor; a
# slice no executor takes this long makes the run fail (engine/scaleout.py).
SLICE_HEARTBEAT_TIMEOUT_SECONDS = _env_number("DS_SLICE_HEARTBEAT_TIMEOUT", 10.0, 1.0, float)
SLICE_QUEUE_TIMEOUT_SECONDS = _env_number("DS_SLICE_QUEUE_TIMEOUT", 60.0, 1.0, float)
