"""Settings for distributed_system: four databases, one router, no web front end but the admin.

Everything a deployment changes comes from the environment; the defaults suit a developer's machine.
"""

import math
import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

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
    "django.contrib.staticfiles",
    "data_insertion",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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


def sqlite_database(filename: str, data_dir: Path = DATA_DIR) -> dict:
    """A SQLite alias set up for many concurrent writers, through Django's own OPTIONS.

    WAL lets readers run beside the writer; synchronous=NORMAL is safe in WAL against process
    crashes; IMMEDIATE takes the write lock at BEGIN, so a transaction that reads then writes
    waits for the lock (up to `timeout`) instead of failing with "database is locked".
    """
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": data_dir / filename,
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL",
            "transaction_mode": "IMMEDIATE",
            "timeout": SQLITE_TIMEOUT_SECONDS,
        },
        "TEST": {"NAME": str(data_dir / f"test_{filename}")},
    }


# The most connections this process opens to one server database (PostgreSQL or MariaDB): one
# for the main thread (migrations, counts), the rest shared by the threads that write, each
# holding one only for the length of a transaction (data_insertion.transactions). SQLite files
# are not servers and have no such limit.
# A server that accepts a connection but never answers (a wrong port, a proxy) fails fast.
SERVER_CONNECT_TIMEOUT_SECONDS = 10
SERVER_READ_TIMEOUT_SECONDS = 120
MAX_CONNECTIONS_PER_DATABASE = _env_number("DS_MAX_CONNECTIONS_PER_DATABASE", 20, minimum=2)


def server_database(url: str) -> dict:
    """An alias on a PostgreSQL or MariaDB/MySQL server, from a URL such as
    postgres://user:password@host:5432/name or mysql://user:password@host:3306/name.

    Connections come from a pool of MAX_CONNECTIONS_PER_DATABASE (psycopg's on PostgreSQL, our
    own on MariaDB), so a connection handed back after a transaction is reused, not reopened.
    The backends are Django's, adjusted in distributed_system.backends.
    """
    scheme = urlsplit(url).scheme
    if scheme == "mariadb":  # dj-database-url knows it as mysql://
        url = "mysql" + url[len(scheme) :]
    try:
        database = dj_database_url.parse(url)
    except ValueError:  # an unknown scheme, or a malformed URL
        database = {"ENGINE": None}
    options = database.setdefault("OPTIONS", {})
    if database["ENGINE"] == "django.db.backends.postgresql":
        # Django's PostgreSQL backend, failing at once when the server refuses the pool.
        database["ENGINE"] = "distributed_system.backends.postgresql"
        options["pool"] = {
            "min_size": min(4, MAX_CONNECTIONS_PER_DATABASE),
            "max_size": MAX_CONNECTIONS_PER_DATABASE,
        }
        options.setdefault("connect_timeout", SERVER_CONNECT_TIMEOUT_SECONDS)
    elif database["ENGINE"] == "django.db.backends.mysql":
        # Django's MySQL backend (on mysqlclient, or PyMySQL where that is not installed) with
        # idle connections kept for reuse, as PostgreSQL's pool does.
        database["ENGINE"] = "distributed_system.backends.mysql"
        options["pool"] = {"max_size": MAX_CONNECTIONS_PER_DATABASE}
        options.setdefault("connect_timeout", SERVER_CONNECT_TIMEOUT_SECONDS)
        # Longer than any lock wait (GET_LOCK 30 s, InnoDB's 50 s): a server that stops
        # answering fails the transaction instead of hanging the run.
        options.setdefault("read_timeout", SERVER_READ_TIMEOUT_SECONDS)
    else:
        # The URL itself is not repeated: it may hold a password.
        raise ImproperlyConfigured(
            f"{scheme or 'a URL without a scheme'}:// is not supported: use postgres://, "
            "mysql:// (or mariadb://) or sqlite://"
        )
    return database


def configured_database(variable: str, filename: str) -> dict:
    """The alias a URL in `variable` names; a SQLite file in DATA_DIR when it is unset."""
    url = os.environ.get(variable, "").strip()
    if not url:
        return sqlite_database(filename)
    if urlsplit(url).scheme == "sqlite":
        path = Path(dj_database_url.parse(url)["NAME"]).resolve()
        return sqlite_database(path.name, path.parent)
    try:
        return server_database(url)
    except ImproperlyConfigured as error:
        raise ImproperlyConfigured(f"{variable}: {error}") from None


DATABASES = {
    "default": configured_database("DEFAULT_DATABASE_URL", "default.db"),
    "users_db": configured_database("USERS_DATABASE_URL", "users.db"),
    "products_db": configured_database("PRODUCTS_DATABASE_URL", "products.db"),
    "orders_db": configured_database("ORDERS_DATABASE_URL", "orders.db"),
}

DATABASE_ROUTERS = ["distributed_system.routers.ModelDatabaseRouter"]

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

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
