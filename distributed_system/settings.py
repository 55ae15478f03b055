"""Settings for distributed_system: four databases, one router, no web front end but the admin.

Everything a deployment changes comes from the environment; the defaults suit a developer's machine.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# The three SQLite files (and Django's own default.db) live here; tests point it at a temporary
# directory so they never touch a user's data.
DATA_DIR = Path(os.environ.get("DS_DATA_DIR") or BASE_DIR).resolve()


def _env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# A development key: `check --deploy` flags it, and any deployment sets DJANGO_SECRET_KEY.
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY",
    "django-insecure-development-only-key-set-DJANGO_SECRET_KEY-in-production",
)
DEBUG = _env_flag("DJANGO_DEBUG")
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
            "timeout": 30,
        },
        "TEST": {"NAME": str(data_dir / f"test_{filename}")},
    }


DATABASES = {
    "default": sqlite_database("default.db"),
    "users_db": sqlite_database("users.db"),
    "products_db": sqlite_database("products.db"),
    "orders_db": sqlite_database("orders.db"),
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
