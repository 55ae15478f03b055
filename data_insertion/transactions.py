"""Write transactions that make check-then-insert race-free without a unique index.

The one place that knows how each backend serialises writers that must not overlap:

- SQLite: one writer at a time per database file anyway. A process-wide lock per database keeps
  our own threads out of SQLite's busy handler (threads sleeping there can stall the thread that
  holds the write lock; see the README's troubleshooting), and BEGIN IMMEDIATE (settings) makes
  other processes wait for the write lock before the check runs. The transaction runs on the
  DB-API connection Django opened for the thread (same file, same settings, errors translated
  by Django): an empty atomic() took 18.7 µs, BEGIN IMMEDIATE and COMMIT 5.0 µs, and a
  one-row transaction is mostly its BEGIN and COMMIT.
- PostgreSQL (READ COMMITTED): a transaction-scoped advisory lock on a hash of each key, all
  taken in one statement in sorted order, released by COMMIT or ROLLBACK.
- MariaDB/MySQL (READ COMMITTED, where a locking read of a missing row blocks nobody): GET_LOCK
  on a hash of each key, in sorted order, released explicitly after the transaction (COMMIT does
  not release it).

Taking the locks in one order means two batches never wait for each other in a cycle; a
deadlock the server still detects, a serialization failure or a lock wait that times out all
surface as django.db.OperationalError, which the services retry with backoff.

It is also the one place that caps connections to a server. Each server database has
settings.MAX_CONNECTIONS_PER_DATABASE - 1 permits (one connection is left for the main thread's
migrations and counts). A thread takes a permit for every server database it touches in a write
transaction (its own, and the ones an order's checks read) and, when its outermost write
transaction ends, closes those connections and gives the permits back. So any number of threads
can submit records at once while each server sees a bounded number of connections; on
PostgreSQL a close hands the connection back to the pool (settings) instead of ending it.
"""

import hashlib
import itertools
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, OperationalError, connections, transaction

# MariaDB waits this long for a named lock before giving up with a (retried) error.
MYSQL_LOCK_TIMEOUT_SECONDS = 30
# Emails are locked by bucket (lock_bucket): at most this many locks per transaction.
LOCK_BUCKETS = 1024
# The high half of this project's PostgreSQL advisory lock numbers ("DS" 0 1), so that they
# cannot collide with another application's locks on the same server.
ADVISORY_LOCK_CLASS = 0x44530001
# Named locks taken per statement on MariaDB (each is one expression of a SELECT).
MYSQL_LOCKS_PER_STATEMENT = 100
# A thread waits this long for a connection permit before giving up with a (retried) error.
PERMIT_TIMEOUT_SECONDS = 60


class LockNotAcquired(OperationalError):
    """A named lock timed out: retried like any other transient database error."""


class ConnectionsBusy(LockNotAcquired):
    """No connection permit for a server database came free in time: retried like a lock."""


class FairSemaphore:
    """A semaphore whose waiters are served first come, first served.

    threading.Semaphore lets a thread that releases take the permit straight back, ahead of
    threads already waiting, which then queue again at the back: with hundreds of threads and a
    few permits, some waited seconds while others went round many times.
    """

    def __init__(self, size: int) -> None:
        self._free = size
        self._lock = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self, timeout: float) -> bool:
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return True
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        if waiter.acquire(timeout=timeout):
            return True
        with self._lock:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                return True  # handed a permit as the wait ran out
            return False

    @property
    def waiting(self) -> int:
        """How many threads are queued for a permit."""
        return len(self._waiters)

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().release()  # the permit passes to the oldest waiter
            else:
                self._free += 1


_sqlite_locks: dict[str, threading.Lock] = {}
_permits: dict[str, FairSemaphore] = {}
_guard = threading.Lock()
_thread_state = threading.local()


def _sqlite_lock(alias: str) -> threading.Lock:
    lock = _sqlite_locks.get(alias)
    if lock is None:
        with _guard:
            lock = _sqlite_locks.setdefault(alias, threading.Lock())
    return lock


def connection_permits(alias: str) -> int:
    """How many threads may hold a connection to the server database `alias` at once."""
    return max(1, settings.MAX_CONNECTIONS_PER_DATABASE - 1)


def _permit(alias: str) -> FairSemaphore:
    permit = _permits.get(alias)
    if permit is None:
        with _guard:
            permit = _permits.setdefault(alias, FairSemaphore(connection_permits(alias)))
    return permit


def _held() -> list[str]:
    """The server aliases whose permits the calling thread holds, in the order it took them."""
    if not hasattr(_thread_state, "held"):
        _thread_state.depth = 0
        _thread_state.held = []
    return _thread_state.held


def use_connection(connection) -> None:
    """Count the calling thread's `connection` (from django.db.connections) against its
    database's cap before it is used.

    Within a write transaction, on a server database, the first use takes a permit (waiting
    for one if need be), returned when the outermost write transaction ends. Elsewhere (SQLite,
    or outside a write transaction) it does nothing.
    """
    alias = connection.alias
    held = _held()
    if _thread_state.depth == 0 or alias in held or connection.vendor == "sqlite":
        return
    if not _permit(alias).acquire(timeout=PERMIT_TIMEOUT_SECONDS):
        raise ConnectionsBusy(
            f"no connection to {alias} came free within {PERMIT_TIMEOUT_SECONDS} s "
            f"({connection_permits(alias)} in use; see DS_MAX_CONNECTIONS_PER_DATABASE)"
        )
    held.append(alias)


@contextmanager
def _connection_scope() -> Iterator[None]:
    """Server connections a thread opens in here are closed, and their permits freed, at exit."""
    held = _held()
    _thread_state.depth += 1
    try:
        yield
    finally:
        _thread_state.depth -= 1
        if _thread_state.depth == 0:
            while held:
                alias = held.pop()
                try:
                    # A caller's own outer transaction keeps its connection.
                    if not connections[alias].in_atomic_block:
                        connections[alias].close()
                except DatabaseError:
                    pass  # a broken connection is dropped by close() all the same
                finally:
                    _permit(alias).release()


def _lock_digest(key: str, size: int = 8) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=size).digest()


def lock_bucket(key: str) -> int:
    """Which of LOCK_BUCKETS locks stands for `key`: equal keys always share one.

    Locking buckets, not keys, bounds the locks one transaction holds, whatever the batch size:
    a lock per email made batches of thousands exhaust PostgreSQL's shared lock table.
    """
    return int.from_bytes(_lock_digest(key), "big") % LOCK_BUCKETS


def advisory_lock_number(key: str) -> int:
    """The PostgreSQL advisory lock (a signed 64-bit number) that stands for `key`'s bucket:
    this project's own class of locks in the high 32 bits, the bucket in the low ones."""
    return (ADVISORY_LOCK_CLASS << 32) | lock_bucket(key)


def _postgresql_lock(alias: str, keys: Sequence[str]) -> None:
    # unnest() yields the array in order, so the locks are taken in sorted order.
    numbers = sorted({advisory_lock_number(key) for key in keys})
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(key) FROM unnest(%s::bigint[]) AS key", [numbers]
        )


def _mysql_lock_names(alias: str, keys: Sequence[str]) -> list[str]:
    # GET_LOCK names are server-wide: the database's name keeps two databases apart.
    database = connections[alias].settings_dict["NAME"]
    return sorted({f"ds_{_lock_digest(database, 16).hex()}_{lock_bucket(key)}" for key in keys})


def _mysql_lock(alias: str, names: list[str]) -> None:
    """GET_LOCK every name (sorted), or none of them and an OperationalError."""
    try:
        with connections[alias].cursor() as cursor:
            for start in range(0, len(names), MYSQL_LOCKS_PER_STATEMENT):
                chunk = names[start : start + MYSQL_LOCKS_PER_STATEMENT]
                # MariaDB evaluates a select list from left to right.
                cursor.execute(
                    "SELECT " + ", ".join(["GET_LOCK(%s, %s)"] * len(chunk)),
                    [value for name in chunk for value in (name, MYSQL_LOCK_TIMEOUT_SECONDS)],
                )
                if any(acquired != 1 for acquired in cursor.fetchone()):
                    raise LockNotAcquired(
                        f"could not take the locks for {len(names)} keys on {alias} "
                        f"within {MYSQL_LOCK_TIMEOUT_SECONDS} s"
                    )
    except BaseException:
        _mysql_unlock(alias, names)  # RELEASE_LOCK of a lock this session lacks does nothing
        raise


def _mysql_unlock(alias: str, names: list[str]) -> None:
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            for start in range(0, len(names), MYSQL_LOCKS_PER_STATEMENT):
                chunk = names[start : start + MYSQL_LOCKS_PER_STATEMENT]
                cursor.execute("SELECT " + ", ".join(["RELEASE_LOCK(%s)"] * len(chunk)), chunk)
    except DatabaseError:
        connection.close()  # the server releases a session's locks when it ends


@contextmanager
def write_transaction(alias: str, lock_keys: Sequence[str] = ()) -> Iterator[None]:
    """An atomic block on `alias` in which no other writer holding any of `lock_keys` can run.

    On SQLite every write transaction of this process is serialised, whatever the keys.
    """
    connection = connections[alias]
    vendor = connection.vendor
    # On SQLite too: an order's checks read the users and products databases, which may be on
    # servers, and those reads must take (and give back) their connection permits.
    with _connection_scope():
        if vendor == "sqlite":
            with _sqlite_lock(alias):
                # The caller's own transaction (the admin's views, or autocommit turned off).
                if connection.in_atomic_block or not connection.get_autocommit():
                    with transaction.atomic(using=alias):
                        yield
                else:
                    with _sqlite_transaction(connection):
                        yield
            return
        use_connection(connection)
        if vendor == "mysql" and lock_keys:
            names = _mysql_lock_names(alias, lock_keys)
            _mysql_lock(alias, names)
            try:
                with transaction.atomic(using=alias):
                    yield
            finally:
                _mysql_unlock(alias, names)
            return
        with transaction.atomic(using=alias):
            if vendor == "postgresql" and lock_keys:
                _postgresql_lock(alias, lock_keys)
            yield


def _dbapi_transactions() -> set[str]:
    """The aliases on which the calling thread has a DB-API write transaction open."""
    if not hasattr(_thread_state, "dbapi_transactions"):
        _thread_state.dbapi_transactions = set()
    return _thread_state.dbapi_transactions


def in_dbapi_transaction(alias: str) -> bool:
    return alias in _dbapi_transactions()


@contextmanager
def _sqlite_transaction(connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT on the thread's DB-API connection; ROLLBACK on any exception."""
    connection.ensure_connection()
    dbapi = connection.connection
    with connection.wrap_database_errors:
        dbapi.execute(f"BEGIN {connection.transaction_mode or 'DEFERRED'}")
    _dbapi_transactions().add(connection.alias)
    try:
        yield
        with connection.wrap_database_errors:
            dbapi.execute("COMMIT")
    except BaseException:
        _sqlite_rollback(connection)
        raise
    finally:
        _dbapi_transactions().discard(connection.alias)


def _sqlite_rollback(connection) -> None:
    dbapi = connection.connection
    if dbapi is None or not dbapi.in_transaction:
        return  # closed, or SQLite already rolled back (it does on some errors)
    try:
        with connection.wrap_database_errors:
            dbapi.execute("ROLLBACK")
    except DatabaseError:
        connection.close()  # closing a connection rolls its transaction back


_savepoint_numbers = itertools.count(1)


@contextmanager
def savepoint(alias: str) -> Iterator[None]:
    """A block inside a write transaction whose statements are undone if it raises, leaving the
    rest of the transaction as it was."""
    connection = connections[alias]
    if connection.vendor != "sqlite":
        with transaction.atomic(using=alias):
            yield
        return
    dbapi = connection.connection
    if dbapi is None or not dbapi.in_transaction:
        # Outside a transaction SAVEPOINT would begin one and RELEASE commit it: after SQLite
        # rolled a transaction back on its own (an interrupt, an I/O error), rows would commit.
        raise OperationalError("no write transaction is open on this connection")
    name = f'"ds_savepoint_{next(_savepoint_numbers)}"'
    with connection.wrap_database_errors:
        dbapi.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        if dbapi.in_transaction:
            try:
                with connection.wrap_database_errors:
                    dbapi.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    dbapi.execute(f"RELEASE SAVEPOINT {name}")
            except DatabaseError:
                pass  # the whole transaction rolls back: keep the first error, as atomic() does
        raise
    with connection.wrap_database_errors:
        dbapi.execute(f"RELEASE SAVEPOINT {name}")
