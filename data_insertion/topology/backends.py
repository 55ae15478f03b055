"""One class per database vendor: how a write transaction makes check-then-insert race-free
without a unique index, how a statement gets its cursor, and which errors are worth a retry.

- SQLite: one writer at a time per database file anyway. A process-wide lock per database keeps
  our own threads out of SQLite's busy handler (threads sleeping there can stall the thread that
  holds the write lock; see the README's troubleshooting), and BEGIN IMMEDIATE (settings) makes
  other processes wait for the write lock before the check runs. The transaction and the
  statements run on the DB-API connection Django opened for the thread (same file, same
  settings, errors translated by Django): an empty atomic() took 18.7 µs, BEGIN IMMEDIATE and
  COMMIT 5.0 µs; a one-row lookup through Django's cursor 13.7 µs, on the sqlite3 cursor 3.7 µs.
- PostgreSQL (READ COMMITTED): a transaction-scoped advisory lock on each key's bucket, all
  taken in one statement in sorted order, released by COMMIT or ROLLBACK.
- MariaDB/MySQL (READ COMMITTED, where a locking read of a missing row blocks nobody): GET_LOCK
  on each key's bucket, in sorted order, released explicitly after the transaction (COMMIT does
  not release it).

Taking the locks in one order means two batches never wait for each other in a cycle; a
deadlock the server still detects, a serialization failure or a lock wait that times out all
surface as django.db.OperationalError, which the services retry when is_transient() says so.
Server connections are capped per database (connections.py).
"""

import hashlib
import itertools
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from django.db import DatabaseError, OperationalError, ProgrammingError, connections, transaction

from .breakers import CircuitOpen, breaker
from .connections import LockNotAcquired, connection_scope, take_permit

# Emails are locked by bucket (lock_bucket): at most this many locks per transaction.
LOCK_BUCKETS = 1024
# The high half of this project's PostgreSQL advisory lock numbers ("DS" 0 1), so that they
# cannot collide with another application's locks on the same server.
ADVISORY_LOCK_CLASS = 0x44530001
# MariaDB waits this long for a named lock before giving up with a (retried) error.
MYSQL_LOCK_TIMEOUT_SECONDS = 30
# Named locks taken per statement on MariaDB (each is one expression of a SELECT).
MYSQL_LOCKS_PER_STATEMENT = 100


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


class Backend:
    """What the engine needs to know about the database behind one alias."""

    vendor: ClassVar[str]
    # The parameter marker of the cursors cursor() gives.
    placeholder: ClassVar[str] = "%s"
    # Whether the database lets one writer in at a time (then a process's threads take turns).
    serialises_writers: ClassVar[bool] = False

    def __init__(self, alias: str) -> None:
        self.alias = alias
        # Injected faults (engine/faults.py): extra time in each write transaction, and the
        # error every use raises while the database is down.
        self.delay = 0.0
        self.down: str | None = None

    @property
    def connection(self):
        """The calling thread's Django connection to this database."""
        return connections[self.alias]

    @property
    def location(self) -> str:
        """Where the database lives, as the outputs show it: host, port and name; never a
        password."""
        settings = connections.settings[self.alias]
        host = settings.get("HOST") or "localhost"
        port = f":{settings['PORT']}" if settings.get("PORT") else ""
        return f"{host}{port}/{settings['NAME']}"

    def check_location(self) -> None:
        """Raise OSError, saying what to do, when the database cannot be where settings put it."""

    def check_writable(self) -> None:
        """Raise if the database cannot take writes, without waiting for another writer."""

    @contextmanager
    def write_transaction(self, lock_keys: Sequence[str] = ()) -> Iterator[None]:
        """An atomic block in which no other writer holding any of `lock_keys` can run.

        Refused at once while the database is down or its breaker is open; a failure of the
        database itself is named after it and counted by its breaker (topology/breakers.py).
        """
        # The scope: an order's checks read the users and products databases, which may be on
        # servers, and those reads take (and give back) their connection permits.
        with connection_scope():
            try:
                self.admit()
                with self._transaction(lock_keys):
                    if self.delay:
                        time.sleep(self.delay)
                    yield
            except OperationalError as error:
                self.count_failure(error)
                raise
        breaker(self.alias).succeeded()

    def _transaction(self, lock_keys: Sequence[str]):
        """The vendor's own write transaction (see write_transaction)."""
        raise NotImplementedError

    def admit(self) -> None:
        """Raise while the database is down (an injected fault) or its breaker is open."""
        breaker(self.alias).admit()
        if self.down is not None:
            raise OperationalError(self.down)

    def name_in(self, error: OperationalError) -> bool:
        """Name this database in `error`, unless a database already is (an order's
        transaction on orders_db sees a failure of products_db go by); whether it named it."""
        if isinstance(error, CircuitOpen) or getattr(error, "database", None):
            return False
        error.database = self.alias
        if not str(error).startswith(f"{self.alias}: "):
            error.args = (f"{self.alias}: {error}", *error.args[1:])
        return True

    def count_failure(self, error: OperationalError) -> None:
        """Name the database in `error` and count it against the database's breaker, once."""
        if self.name_in(error):
            breaker(self.alias).failed(error)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A block inside a write transaction whose statements are undone if it raises,
        leaving the rest of the transaction as it was."""
        with transaction.atomic(using=self.alias):
            yield

    @contextmanager
    def cursor(self, connection=None) -> Iterator:
        """A cursor for one statement; `connection` is the thread's connection to this
        database, if the caller has it. Refused while the database is down; its errors are
        named after it. The breaker watches write transactions only: a read an order makes of
        the users database goes on while another process holds that database's write lock."""
        try:
            if self.down is not None:
                raise OperationalError(self.down)
            with self._cursor(connection or self.connection) as cursor:
                yield cursor
        except OperationalError as error:
            self.name_in(error)
            raise

    def housekeeping_cursor(self):
        """A cursor for the run's own bookkeeping (the counts that reconcile a run): not
        refused by injected faults or an open breaker, which are about the records' traffic."""
        return self._cursor(self.connection)

    @contextmanager
    def _cursor(self, connection) -> Iterator:
        """Django's cursor, counted against the database's connection cap."""
        take_permit(connection)
        with connection.cursor() as cursor:
            yield cursor

    # The modules of the driver whose errors this vendor's transient() reads.
    driver_modules: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def transient(cls, error: OperationalError) -> bool:
        """Whether this vendor's `error` is worth another try."""
        raise NotImplementedError


class SQLiteBackend(Backend):
    vendor = "sqlite"
    placeholder = "?"
    serialises_writers = True

    _writer_locks: ClassVar[dict[str, threading.RLock]] = {}
    _guard = threading.Lock()
    _open = threading.local()  # the aliases on which this thread has a DB-API transaction open
    _savepoint_numbers = itertools.count(1)

    @property
    def location(self) -> str:
        return str(connections.settings[self.alias]["NAME"])

    def check_location(self) -> None:
        # SQLite creates a missing file but never its folder, and then says only "unable to
        # open database file".
        if self.connection.is_in_memory_db():
            return
        directory = Path(self.location).parent
        if not directory.is_dir():
            raise OSError(
                f"the directory {directory} does not exist. Create it (mkdir -p {directory}) "
                "or set DS_DATA_DIR to an existing directory."
            )

    def check_writable(self) -> None:
        """BEGIN IMMEDIATE with no busy wait: a read-only file or directory fails now. A write
        lock another process holds is no fault of the file and is not waited for: waiting here
        held up the start of every other database (measured: no product committed while
        another process held users.db's lock for 20 s)."""
        connection = self.connection
        connection.ensure_connection()
        dbapi = connection.connection
        timeout = connection.settings_dict["OPTIONS"].get("timeout", 5)
        with connection.wrap_database_errors:
            dbapi.execute("PRAGMA busy_timeout = 0")
            try:
                dbapi.execute("BEGIN IMMEDIATE")
                dbapi.execute("ROLLBACK")
            except sqlite3.OperationalError as error:
                if not self.transient(error):
                    raise
            finally:
                dbapi.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")

    def writer_lock(self) -> threading.RLock:
        """The process's one lock on this database file. The engine's per-record workers hold
        it for a turn of several records (handing it over per record halved the rate); each
        write transaction takes it again, which a turn's holder does at once."""
        lock = self._writer_locks.get(self.alias)
        if lock is None:
            with self._guard:
                lock = self._writer_locks.setdefault(self.alias, threading.RLock())
        return lock

    @contextmanager
    def _transaction(self, lock_keys: Sequence[str]) -> Iterator[None]:
        connection = self.connection
        if connection.in_atomic_block or not connection.get_autocommit():
            # The caller's own transaction (the admin's views, or autocommit turned off): its
            # BEGIN IMMEDIATE holds the file's write lock already. Waiting for the process's
            # lock now would take the two in the opposite order to a worker's turn, which
            # holds the process's lock and waits for the file's: neither would move.
            with transaction.atomic(using=self.alias):
                yield
            return
        # Every write of this process is serialised, whatever the keys.
        with self.writer_lock(), self._dbapi_transaction(connection):
            yield

    def _open_transactions(self) -> set[str]:
        if not hasattr(self._open, "aliases"):
            self._open.aliases = set()
        return self._open.aliases

    @contextmanager
    def _dbapi_transaction(self, connection) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT on the thread's DB-API connection; ROLLBACK on any
        exception."""
        connection.ensure_connection()
        dbapi = connection.connection
        with connection.wrap_database_errors:
            dbapi.execute(f"BEGIN {connection.transaction_mode or 'DEFERRED'}")
        self._open_transactions().add(self.alias)
        try:
            yield
            with connection.wrap_database_errors:
                dbapi.execute("COMMIT")
        except BaseException:
            self._rollback(connection)
            raise
        finally:
            self._open_transactions().discard(self.alias)

    @staticmethod
    def _rollback(connection) -> None:
        dbapi = connection.connection
        if dbapi is None or not dbapi.in_transaction:
            return  # closed, or SQLite already rolled back (it does on some errors)
        try:
            with connection.wrap_database_errors:
                dbapi.execute("ROLLBACK")
        except DatabaseError:
            connection.close()  # closing a connection rolls its transaction back

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        connection = self.connection
        dbapi = connection.connection
        if dbapi is None or not dbapi.in_transaction:
            # Outside a transaction SAVEPOINT would begin one and RELEASE commit it: after
            # SQLite rolled a transaction back on its own (an interrupt, an I/O error), rows
            # would commit.
            raise OperationalError("no write transaction is open on this connection")
        name = f'"ds_savepoint_{next(self._savepoint_numbers)}"'
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
                    pass  # the whole transaction rolls back: keep the first error, as atomic()
            raise
        with connection.wrap_database_errors:
            dbapi.execute(f"RELEASE SAVEPOINT {name}")

    @contextmanager
    def _cursor(self, connection) -> Iterator:
        """The sqlite3 cursor itself (`?` markers), inside Django's error translation."""
        if connection.connection is None:
            if self.alias in self._open_transactions():
                # A new connection would autocommit what the transaction was to hold.
                raise ProgrammingError("the connection was closed inside a write transaction")
            connection.ensure_connection()
        with connection.wrap_database_errors:
            cursor = connection.connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()

    driver_modules = ("sqlite3",)

    @classmethod
    def transient(cls, error: OperationalError) -> bool:
        # "database is locked" or "database table is locked"
        return "locked" in str(error).lower()


class PostgreSQLBackend(Backend):
    vendor = "postgresql"
    # Serialization failure, deadlock, lock not available.
    TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})

    @contextmanager
    def _transaction(self, lock_keys: Sequence[str]) -> Iterator[None]:
        take_permit(self.connection)
        with transaction.atomic(using=self.alias):
            if lock_keys:
                # unnest() yields the array in order: the locks are taken in sorted order.
                numbers = sorted({advisory_lock_number(key) for key in lock_keys})
                with self.connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_advisory_xact_lock(key) FROM unnest(%s::bigint[]) AS key",
                        [numbers],
                    )
            yield

    driver_modules = ("psycopg",)

    @classmethod
    def transient(cls, error: OperationalError) -> bool:
        return getattr(error.__cause__, "sqlstate", None) in cls.TRANSIENT_SQLSTATES


class MySQLBackend(Backend):
    vendor = "mysql"
    # Lock wait timeout, deadlock.
    TRANSIENT_ERROR_CODES = frozenset({1205, 1213})

    @contextmanager
    def _transaction(self, lock_keys: Sequence[str]) -> Iterator[None]:
        take_permit(self.connection)
        names = self._lock_names(lock_keys)
        if names:
            self._lock(names)
        try:
            with transaction.atomic(using=self.alias):
                yield
        finally:
            if names:
                self._unlock(names)

    def _lock_names(self, keys: Sequence[str]) -> list[str]:
        # GET_LOCK names are server-wide: the database's name keeps two databases apart.
        database = self.connection.settings_dict["NAME"]
        prefix = f"ds_{_lock_digest(database, 16).hex()}"
        return sorted({f"{prefix}_{lock_bucket(key)}" for key in keys})

    def _lock(self, names: list[str]) -> None:
        """GET_LOCK every name (sorted), or none of them and an OperationalError."""
        try:
            with self.connection.cursor() as cursor:
                for start in range(0, len(names), MYSQL_LOCKS_PER_STATEMENT):
                    chunk = names[start : start + MYSQL_LOCKS_PER_STATEMENT]
                    # MariaDB evaluates a select list from left to right.
                    cursor.execute(
                        "SELECT " + ", ".join(["GET_LOCK(%s, %s)"] * len(chunk)),
                        [value for name in chunk for value in (name, MYSQL_LOCK_TIMEOUT_SECONDS)],
                    )
                    if any(acquired != 1 for acquired in cursor.fetchone()):
                        raise LockNotAcquired(
                            f"could not take the locks for {len(names)} keys on {self.alias} "
                            f"within {MYSQL_LOCK_TIMEOUT_SECONDS} s"
                        )
        except BaseException:
            self._unlock(names)  # RELEASE_LOCK of a lock this session lacks does nothing
            raise

    def _unlock(self, names: list[str]) -> None:
        connection = self.connection
        try:
            with connection.cursor() as cursor:
                for start in range(0, len(names), MYSQL_LOCKS_PER_STATEMENT):
                    chunk = names[start : start + MYSQL_LOCKS_PER_STATEMENT]
                    cursor.execute("SELECT " + ", ".join(["RELEASE_LOCK(%s)"] * len(chunk)), chunk)
        except DatabaseError:
            connection.close()  # the server releases a session's locks when it ends

    driver_modules = ("pymysql", "MySQLdb")

    @classmethod
    def transient(cls, error: OperationalError) -> bool:
        args = getattr(error.__cause__, "args", ())
        return bool(args) and args[0] in cls.TRANSIENT_ERROR_CODES


BACKENDS: dict[str, type[Backend]] = {
    backend.vendor: backend for backend in (SQLiteBackend, PostgreSQLBackend, MySQLBackend)
}
_backends: dict[tuple[str, str], Backend] = {}


def backend(alias: str) -> Backend:
    """The backend of the database behind `alias`, by the engine its settings name (read from
    the settings, not the thread's connection: this is asked several times per record)."""
    engine = connections.settings[alias]["ENGINE"]
    found = _backends.get((alias, engine))
    if found is None:
        found = _backends.setdefault((alias, engine), BACKENDS[connections[alias].vendor](alias))
    return found


def is_transient(error: OperationalError) -> bool:
    """Whether trying again can succeed: another writer held a lock, or the server picked the
    transaction as a deadlock or serialization victim; a full disk or a broken file cannot.
    Asked of the vendor whose driver raised it: an order's transaction on SQLite may fail on a
    read of a server database."""
    if isinstance(error, CircuitOpen):
        return False  # the breaker decided: no retry
    if isinstance(error, LockNotAcquired):
        return True
    driver = type(error.__cause__).__module__.split(".")[0]
    for backend_class in BACKENDS.values():
        if driver in backend_class.driver_modules:
            return backend_class.transient(error)
    # Not a driver's error (SQLite's own "locked" raised while connecting, say).
    return SQLiteBackend.transient(error)
