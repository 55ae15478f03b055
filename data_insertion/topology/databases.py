"""Django's DATABASES for every alias: a SQLite file in the data directory, or a server by URL.

Settings call configured_databases() with the values it read from the environment; nothing
here imports Django's database layer, so settings can import it.
"""

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .placement import DEFAULT_DATABASE, FILENAMES, MODEL_DATABASES, URL_VARIABLES
from .shards import (
    MODEL_SHARDS_VARIABLES,
    configured_shard_counts,
    shard_alias,
    shard_filename,
)

# A server that accepts a connection but never answers (a wrong port, a proxy) fails fast.
SERVER_CONNECT_TIMEOUT_SECONDS = 10
# Longer than any lock wait (GET_LOCK 30 s, InnoDB's 50 s): a server that stops answering
# fails the transaction instead of hanging the run.
SERVER_READ_TIMEOUT_SECONDS = 120


def sqlite_database(path: Path, timeout: float) -> dict:
    """A SQLite alias set up for many concurrent writers, through Django's own OPTIONS.

    WAL lets readers run beside the writer; synchronous=NORMAL is safe in WAL against process
    crashes; IMMEDIATE takes the write lock at BEGIN, so a transaction that reads then writes
    waits for the lock (up to `timeout`) instead of failing with "database is locked".
    """
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL",
            "transaction_mode": "IMMEDIATE",
            "timeout": timeout,
        },
        "TEST": {"NAME": str(path.with_name(f"test_{path.name}"))},
    }


def server_database(url: str, max_connections: int) -> dict:
    """An alias on a PostgreSQL or MariaDB/MySQL server, from a URL such as
    postgres://user:password@host:5432/name or mysql://user:password@host:3306/name.

    Connections come from a pool of `max_connections` (psycopg's on PostgreSQL, our own on
    MariaDB), so a connection handed back after a transaction is reused, not reopened. The
    backends are Django's, adjusted in distributed_system.backends.
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
        options["pool"] = {"min_size": min(4, max_connections), "max_size": max_connections}
        options.setdefault("connect_timeout", SERVER_CONNECT_TIMEOUT_SECONDS)
    elif database["ENGINE"] == "django.db.backends.mysql":
        # Django's MySQL backend (on mysqlclient, or PyMySQL where that is not installed) with
        # idle connections kept for reuse, as PostgreSQL's pool does.
        database["ENGINE"] = "distributed_system.backends.mysql"
        options["pool"] = {"max_size": max_connections}
        options.setdefault("connect_timeout", SERVER_CONNECT_TIMEOUT_SECONDS)
        options.setdefault("read_timeout", SERVER_READ_TIMEOUT_SECONDS)
    else:
        # The URL itself is not repeated: it may hold a password.
        raise ImproperlyConfigured(
            f"{scheme or 'a URL without a scheme'}:// is not supported: use postgres://, "
            "mysql:// (or mariadb://) or sqlite://"
        )
    return database


def configured_database(
    alias: str,
    environ: Mapping[str, str],
    data_dir: Path,
    sqlite_timeout: float,
    max_connections: int,
) -> dict:
    """The database `alias`'s URL variable names; its SQLite file in `data_dir` when unset."""
    variable = URL_VARIABLES[alias]
    url = environ.get(variable, "").strip()
    if not url:
        return sqlite_database(data_dir / FILENAMES[alias], sqlite_timeout)
    if urlsplit(url).scheme == "sqlite":
        return sqlite_database(Path(dj_database_url.parse(url)["NAME"]).resolve(), sqlite_timeout)
    try:
        return server_database(url, max_connections)
    except ImproperlyConfigured as error:
        raise ImproperlyConfigured(f"{variable}: {error}") from None


def configured_databases(
    environ: Mapping[str, str], data_dir: Path, sqlite_timeout: float, max_connections: int
) -> dict[str, dict]:
    """DATABASES: default, then each model's databases, configured from `environ`: one alias
    (users_db) for a model in one database, users_db_0 ... users_db_{N-1} for N shards."""
    counts = configured_shard_counts(environ)
    databases = {
        DEFAULT_DATABASE: configured_database(
            DEFAULT_DATABASE, environ, data_dir, sqlite_timeout, max_connections
        )
    }
    for model, alias in MODEL_DATABASES.items():
        urls = _shard_urls(environ, alias)
        if counts[model] == 1 and len(urls) < 2:
            databases[alias] = configured_database(
                alias, environ, data_dir, sqlite_timeout, max_connections
            )
            continue
        if counts[model] == 1:
            raise ImproperlyConfigured(
                f"{URL_VARIABLES[alias]} lists {len(urls)} databases: set "
                f"{MODEL_SHARDS_VARIABLES[model]} (or DS_SHARDS) to {len(urls)} to shard {model}s "
                "over them"
            )
        for index in range(counts[model]):
            databases[shard_alias(alias, index)] = shard_database(
                model, index, environ, data_dir, sqlite_timeout, max_connections
            )
    return databases


def shard_database(
    model: str,
    index: int,
    environ: Mapping[str, str],
    data_dir: Path,
    sqlite_timeout: float,
    max_connections: int,
) -> dict:
    """The `index`-th database of a sharded model: the index-th URL of its variable's
    comma-separated list, or users_{index}.db (and so on) in `data_dir` when it is unset."""
    alias = MODEL_DATABASES[model]
    variable = URL_VARIABLES[alias]
    urls = _shard_urls(environ, alias)
    if not urls:
        return sqlite_database(data_dir / shard_filename(FILENAMES[alias], index), sqlite_timeout)
    if index >= len(urls):
        raise ImproperlyConfigured(
            f"{variable} lists {len(urls)} databases, and {model}s need {index + 1}: add a URL "
            "for each database, separated by commas"
        )
    url = urls[index]
    if urlsplit(url).scheme == "sqlite":
        return sqlite_database(Path(dj_database_url.parse(url)["NAME"]).resolve(), sqlite_timeout)
    try:
        return server_database(url, max_connections)
    except ImproperlyConfigured as error:
        raise ImproperlyConfigured(f"{variable} (database {index}): {error}") from None


def _shard_urls(environ: Mapping[str, str], alias: str) -> list[str]:
    text = environ.get(URL_VARIABLES[alias], "").strip()
    return [url.strip() for url in text.split(",")] if text else []
