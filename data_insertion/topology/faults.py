"""Real faults on one database, as each vendor allows them: another connection holding the
write lock, and an outage. engine/faults.py decides when; latency is the backend's own `delay`.

- lock: SQLite: another connection's BEGIN IMMEDIATE; PostgreSQL: LOCK TABLE ... IN EXCLUSIVE
  MODE in another session (inserts wait, reads go on); MariaDB: LOCK TABLES ... READ in
  another session (the same).
- down: PostgreSQL: ALTER DATABASE ... ALLOW_CONNECTIONS false, then pg_terminate_backend on
  every connection to it (this process's refused at once meanwhile); afterwards connections
  are allowed again and a new pool replaces the one whose connections were ended. SQLite has no
  server to stop: every open and statement of the process on that file fails ("unable to open
  database file") at the driver's door, the backend's. MariaDB's
  outage needs a server administrator (it has no per-database connection switch): refused.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from django.apps import apps
from django.db import connections

from .backends import Backend
from .placement import APP_LABEL, MODEL_DATABASES

SUPPORTED = {
    "sqlite": {"lock", "latency", "down"},
    "postgresql": {"lock", "latency", "down"},
    "mysql": {"lock", "latency"},
}


def supports(database: Backend, kind: str) -> bool:
    return kind in SUPPORTED[database.vendor]


def _table(alias: str) -> str:
    model = next(name for name, home in MODEL_DATABASES.items() if home == alias)
    return apps.get_model(APP_LABEL, model)._meta.db_table


@contextmanager
def write_lock_held_elsewhere(database: Backend) -> Iterator[None]:
    """Another connection holds the database's write lock for as long as the block runs."""
    if database.vendor == "sqlite":
        timeout = connections.settings[database.alias]["OPTIONS"].get("timeout", 5)
        holder = sqlite3.connect(database.location, timeout=timeout, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield
        finally:
            holder.close()  # rolls back, releasing the lock
        return
    other = connections.create_connection(database.alias)
    try:
        other.ensure_connection()
        session = other.connection
        quote = other.ops.quote_name
        if database.vendor == "postgresql":
            session.execute("BEGIN")
            session.execute(f"LOCK TABLE {quote(_table(database.alias))} IN EXCLUSIVE MODE")
            try:
                yield
            finally:
                session.execute("ROLLBACK")
        else:
            with session.cursor() as cursor:
                cursor.execute(f"LOCK TABLES {quote(_table(database.alias))} READ")
                try:
                    yield
                finally:
                    cursor.execute("UNLOCK TABLES")
    finally:
        other.close()


def cut_off(database: Backend) -> None:
    """The database becomes unreachable: this process is refused at once (as a server that
    no longer takes connections refuses them), and on PostgreSQL the server itself stops
    taking connections and ends every one it has to the database, other clients' included."""
    if database.vendor == "sqlite":
        database.down = f"{database.alias}: unable to open database file (down: an injected fault)"
        return
    database.down = (
        f"{database.alias}: the database is not accepting connections (down: an injected fault)"
    )
    name = connections.settings[database.alias]["NAME"]
    with database.connection._nodb_cursor() as cursor:
        quoted = database.connection.ops.quote_name(name)
        cursor.execute(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS false")
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )


def restore(database: Backend) -> None:
    """The database is reachable again."""
    if database.vendor != "sqlite":
        name = connections.settings[database.alias]["NAME"]
        with database.connection._nodb_cursor() as cursor:
            quoted = database.connection.ops.quote_name(name)
            cursor.execute(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS true")
        if getattr(database.connection, "pool", None) is not None:
            # Every pooled connection was ended, and a pool that failed to reconnect waits
            # ever longer (1, 2, 4 ... s) before it tries again: start a new one at once.
            database.connection.close_pool()
    database.down = None
