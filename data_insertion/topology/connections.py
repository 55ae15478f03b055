"""A cap on the connections one process opens to each server database.

Each server database has settings.MAX_CONNECTIONS_PER_DATABASE - 1 permits (one connection is
left for the main thread's migrations and counts). A thread takes a permit for every server
database it touches inside a write transaction (its own, and the ones an order's checks read)
and, when its outermost write transaction ends, closes those connections and gives the permits
back. So any number of threads can submit records at once while each server sees a bounded
number of connections; on PostgreSQL a close hands the connection back to the pool, on MariaDB
to distributed_system.backends.mysql's idle list.
"""

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, OperationalError, connections

# A thread waits this long for a connection permit before giving up with a (retried) error.
PERMIT_TIMEOUT_SECONDS = 60


class LockNotAcquired(OperationalError):
    """A lock timed out: retried like any other transient database error."""


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


_permits: dict[str, FairSemaphore] = {}
_guard = threading.Lock()
_scope = threading.local()


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
    if not hasattr(_scope, "held"):
        _scope.depth = 0
        _scope.held = []
    return _scope.held


def take_permit(connection) -> None:
    """Count the calling thread's server `connection` against its database's cap before use.

    Inside a connection scope the first use takes a permit (waiting for one if need be),
    returned when the outermost scope ends. Outside one (the main thread's housekeeping) it
    does nothing.
    """
    alias = connection.alias
    held = _held()
    if _scope.depth == 0 or alias in held:
        return
    if not _permit(alias).acquire(timeout=PERMIT_TIMEOUT_SECONDS):
        raise ConnectionsBusy(
            f"no connection to {alias} came free within {PERMIT_TIMEOUT_SECONDS} s "
            f"({connection_permits(alias)} in use; see DS_MAX_CONNECTIONS_PER_DATABASE)"
        )
    held.append(alias)


@contextmanager
def connection_scope() -> Iterator[None]:
    """Server connections a thread opens in here are closed, and their permits freed, at exit."""
    held = _held()
    _scope.depth += 1
    try:
        yield
    finally:
        _scope.depth -= 1
        if _scope.depth == 0:
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
