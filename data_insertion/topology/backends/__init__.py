"""One class per database vendor, on base.py: how a write transaction makes check-then-insert
race-free without a unique index, how a statement gets its cursor, and which errors are worth a
retry. sqlite.py: one writer at a time per file, and a process-wide lock that keeps our threads
out of SQLite's busy handler; postgresql.py: transaction-scoped advisory locks on the keys'
buckets; mysql.py: GET_LOCK on the buckets, released after the transaction.

Taking the locks in one order means two batches never wait for each other in a cycle; a
deadlock the server still detects, a serialization failure or a lock wait that times out all
surface as django.db.OperationalError, which the services retry when is_transient() says so.
Server connections are capped per database (topology/connections.py).
"""

from django.db import OperationalError, connections

from ..breakers import CircuitOpen
from ..connections import LockNotAcquired
from .base import Backend, advisory_lock_number, lock_bucket
from .mysql import MySQLBackend
from .postgresql import PostgreSQLBackend
from .sqlite import SQLiteBackend

__all__ = [
    "BACKENDS",
    "Backend",
    "MySQLBackend",
    "PostgreSQLBackend",
    "SQLiteBackend",
    "advisory_lock_number",
    "backend",
    "is_transient",
    "lock_bucket",
]

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
