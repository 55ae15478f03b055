"""What every vendor's backend does alike: a write transaction refused while its database is
down or its breaker is open, failures named after the database and counted, one cursor per
statement; and the lock buckets that stand for uniqueness keys."""

import hashlib
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import ClassVar

from django.db import DatabaseError, OperationalError, connections, transaction

from ..breakers import CircuitOpen, breaker
from ..connections import ConnectionsBusy, connection_scope, take_permit

# Emails are locked by bucket (lock_bucket): at most this many locks per transaction.
LOCK_BUCKETS = 1024
# The high half of this project's PostgreSQL advisory lock numbers ("DS" 0 1), so that they
# cannot collide with another application's locks on the same server.
ADVISORY_LOCK_CLASS = 0x44530001


def lock_digest(key: str, size: int = 8) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=size).digest()


def lock_bucket(key: str) -> int:
    """Which of LOCK_BUCKETS locks stands for `key`: equal keys always share one.

    Locking buckets, not keys, bounds the locks one transaction holds, whatever the batch size:
    a lock per email made batches of thousands exhaust PostgreSQL's shared lock table.
    """
    return int.from_bytes(lock_digest(key), "big") % LOCK_BUCKETS


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
        self.breaker = breaker(alias)

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
            self.breaker.admit()
            try:
                if self.down is not None:
                    raise OperationalError(self.down)
                with self._transaction(lock_keys):
                    if self.delay:
                        time.sleep(self.delay)
                    yield
            except BaseException as error:
                # Whatever else ended it (another database's failure, a bug, Ctrl-C) says
                # nothing of this one: a probe let through gives its turn back.
                if not (isinstance(error, OperationalError) and self.count_failure(error)):
                    self.breaker.release_probe()
                raise
        self.breaker.succeeded()

    def _transaction(self, lock_keys: Sequence[str]):
        """The vendor's own write transaction (see write_transaction)."""
        raise NotImplementedError

    def name_in(self, error: OperationalError) -> bool:
        """Name this database in `error`, unless a database already is (an order's
        transaction on orders_db sees a failure of products_db go by); whether it named it."""
        if isinstance(error, CircuitOpen) or getattr(error, "database", None):
            return False
        error.database = self.alias
        if not str(error).startswith(f"{self.alias}: "):
            error.args = (f"{self.alias}: {error}", *error.args[1:])
        return True

    def count_failure(self, error: OperationalError) -> bool:
        """Name the database in `error` and count it against the database's breaker, once;
        whether it counted. Waiting for one of this process's own connections (ConnectionsBusy)
        is no failure of the database."""
        if not self.name_in(error) or isinstance(error, ConnectionsBusy):
            return False
        self.breaker.failed(error)
        return True

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A block inside a write transaction whose statements are undone if it raises,
        leaving the rest of the transaction as it was."""
        with transaction.atomic(using=self.alias):
            yield

    @contextmanager
    def cursor(self, connection=None, *, bookkeeping: bool = False) -> Iterator:
        """A cursor for one statement; `connection` is the thread's connection to this
        database, if the caller has it. Refused while the database is down, unless it is for
        the run's own `bookkeeping` (the counts that reconcile a run); its errors are named
        after the database. The breaker watches write transactions only: a read an order makes
        of the users database goes on while another process holds that database's write lock.
        One generator, the vendor's parts plain calls: this runs for every statement."""
        connection = connection or self.connection
        try:
            if self.down is not None and not bookkeeping:
                raise OperationalError(self.down)
            with self._statement_errors(connection):
                cursor = self._open_cursor(connection)
                try:
                    yield cursor
                finally:
                    # As Django's own cursor does: an error closing it would hide the cause.
                    # (try/except, not contextlib.suppress: this runs for every statement.)
                    try:  # noqa: SIM105
                        cursor.close()
                    except DatabaseError:
                        pass
        except OperationalError as error:
            self.name_in(error)
            raise

    def housekeeping_cursor(self):
        """A cursor for the run's own bookkeeping: not refused by injected faults or an open
        breaker, which are about the records' traffic."""
        return self.cursor(bookkeeping=True)

    def _open_cursor(self, connection):
        """Django's cursor, counted against the database's connection cap."""
        take_permit(connection)
        return connection.cursor()

    def _statement_errors(self, connection):
        """What turns the driver's errors into Django's around a statement: Django's own
        cursor does it already."""
        return nullcontext()

    # The modules of the driver whose errors this vendor's transient() reads.
    driver_modules: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def transient(cls, error: OperationalError) -> bool:
        """Whether this vendor's `error` is worth another try."""
        raise NotImplementedError
