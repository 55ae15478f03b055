"""SQLite: one writer at a time per file. A process-wide lock per database keeps our own threads
out of SQLite's busy handler (threads sleeping there can stall the thread that holds the write
lock; see the README's troubleshooting), and BEGIN IMMEDIATE (settings) makes other processes
wait for the write lock before the check runs. The transaction and the statements run on the
DB-API connection Django opened for the thread (same file, same settings, errors translated by
Django): an empty atomic() took 18.7 µs, BEGIN IMMEDIATE and COMMIT 5.0 µs; a one-row lookup
through Django's cursor 13.7 µs, on the sqlite3 cursor 3.7 µs."""

import itertools
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from django.db import DatabaseError, OperationalError, ProgrammingError, connections, transaction

from .base import Backend

try:
    import fcntl
except ImportError:  # Windows: other processes wait in SQLite's busy handler
    fcntl = None


class SQLiteBackend(Backend):
    vendor = "sqlite"
    placeholder = "?"
    serialises_writers = True

    _writer_locks: ClassVar[dict[str, "WriterLock"]] = {}
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
        self.writer_lock()  # its lock file opens, or the run stops before it starts
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

    def writer_lock(self) -> "WriterLock":
        """The one writer lock on this database file, for this process's threads and for other
        processes. The engine's per-record workers hold its turn() for several records
        (handing it over per record halved the rate); each write transaction takes the lock,
        which a turn's holder does at once, unless another process is writing."""
        lock = self._writer_locks.get(self.alias)
        if lock is None or lock.pid != os.getpid():  # a forked process makes its own
            with self._guard:
                lock = self._writer_locks.get(self.alias)
                if lock is None or lock.pid != os.getpid():
                    in_memory = self.connection.is_in_memory_db()
                    path = None if in_memory or fcntl is None else f"{self.location}.lock"
                    try:
                        lock = self._writer_locks[self.alias] = WriterLock(path)
                    except OSError as error:
                        raise OperationalError(
                            f"{self.alias}: cannot open its writer lock file {path}: "
                            f"{error.strerror or error}"
                        ) from None
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
        # Every write of this process is serialised, whatever the keys. Then BEGIN IMMEDIATE
        # ... COMMIT on the thread's DB-API connection; ROLLBACK on any exception.
        with self.writer_lock():
            connection.ensure_connection()
            dbapi = connection.connection
            with connection.wrap_database_errors:
                dbapi.execute(f"BEGIN {connection.transaction_mode or 'DEFERRED'}")
            open_transactions = self._open_transactions()
            open_transactions.add(self.alias)
            try:
                yield
                with connection.wrap_database_errors:
                    dbapi.execute("COMMIT")
            except BaseException:
                self._rollback(connection)
                raise
            finally:
                open_transactions.discard(self.alias)

    def _open_transactions(self) -> set[str]:
        if not hasattr(self._open, "aliases"):
            self._open.aliases = set()
        return self._open.aliases

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

    def _open_cursor(self, connection):
        """The sqlite3 cursor itself (`?` markers)."""
        if connection.connection is None:
            if self.alias in self._open_transactions():
                # A new connection would autocommit what the transaction was to hold.
                raise ProgrammingError("the connection was closed inside a write transaction")
            connection.ensure_connection()
        return connection.connection.cursor()

    def _statement_errors(self, connection):
        """sqlite3's errors become Django's, as through Django's cursor."""
        return connection.wrap_database_errors

    driver_modules = ("sqlite3",)

    @classmethod
    def transient(cls, error: OperationalError) -> bool:
        # "database is locked" or "database table is locked"
        return "locked" in str(error).lower()


class WriterLock:
    """A re-entrant lock for the threads of this process that also excludes other processes:
    an flock() on a file beside the database (users.db.lock), held from the outermost acquire
    to the last release. SQLite's own lock makes other processes wait too, but in its busy
    handler, which polls in growing sleeps (up to 100 ms): two processes writing one file
    finished only 1.2x faster than one (DISTRIBUTED.md). A process waiting on flock() is
    woken the moment the lock is released.

    turn() takes the threads' part alone: a per-record worker holds it for a turn of several
    records, while the file is taken per transaction, so that other processes write between
    the turn's transactions instead of waiting while it validates its next record."""

    def __init__(self, path: str | None) -> None:
        self.pid = os.getpid()
        self._threads = threading.RLock()
        self._depth = 0
        self._file = None if path is None else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def turn(self) -> threading.RLock:
        """This process's threads take turns; other processes are not kept out."""
        return self._threads

    def acquire(self) -> None:
        self._threads.acquire()
        if self._depth == 0 and self._file is not None:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        self._depth += 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._threads.release()

    def __enter__(self) -> "WriterLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()
