"""Write transactions that make check-then-insert race-free without a unique index.

The one place that knows how each backend serialises writers that must not overlap:

- SQLite: one writer at a time per database file anyway. A process-wide lock per database keeps
  our own threads out of SQLite's busy handler (threads sleeping there can stall the thread that
  holds the write lock; see the README's troubleshooting), and BEGIN IMMEDIATE (settings) makes
  other processes wait for the write lock before the check runs.
- PostgreSQL: a transaction-scoped advisory lock on a hash of the key, released at commit.
- MariaDB/MySQL: GET_LOCK on the key, released explicitly after commit (COMMIT does not).
"""

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import OperationalError, connections, transaction

# MariaDB waits this long for a named lock before giving up with a (retried) error.
MYSQL_LOCK_TIMEOUT_SECONDS = 30


class LockNotAcquired(OperationalError):
    """A named lock timed out: retried like any other transient database error."""


_sqlite_locks: dict[str, threading.Lock] = {}
_sqlite_locks_guard = threading.Lock()


def _sqlite_lock(alias: str) -> threading.Lock:
    lock = _sqlite_locks.get(alias)
    if lock is None:
        with _sqlite_locks_guard:
            lock = _sqlite_locks.setdefault(alias, threading.Lock())
    return lock


def _lock_digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=8).digest()


@contextmanager
def write_transaction(alias: str, lock_key: str | None = None) -> Iterator[None]:
    """An atomic block on `alias` in which no other writer holding `lock_key` can run.

    On SQLite every write transaction of this process is serialised, whatever the key.
    """
    vendor = connections[alias].vendor
    if vendor == "sqlite":
        with _sqlite_lock(alias), transaction.atomic(using=alias):
            yield
    elif vendor == "postgresql":
        with transaction.atomic(using=alias):
            if lock_key is not None:
                key = int.from_bytes(_lock_digest(lock_key), "big", signed=True)
                with connections[alias].cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
            yield
    elif vendor == "mysql" and lock_key is not None:
        name = "ds_" + _lock_digest(lock_key).hex()
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, %s)", [name, MYSQL_LOCK_TIMEOUT_SECONDS])
            (acquired,) = cursor.fetchone()
        if acquired != 1:
            raise LockNotAcquired(f"could not take the lock for {lock_key!r} on {alias}")
        try:
            with transaction.atomic(using=alias):
                yield
        finally:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT RELEASE_LOCK(%s)", [name])
    else:
        with transaction.atomic(using=alias):
            yield
