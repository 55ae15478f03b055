"""Django's MySQL/MariaDB backend, with a pool of idle connections as PostgreSQL's has.

data_insertion.transactions closes a thread's server connections after each write transaction,
so that hundreds of threads share a few connections. Here closing hands the connection to the
next thread instead of ending it: a new connection costs a TCP (and TLS) handshake, and PyMySQL
builds a TLS context for each one (measured: 17 ms of CPU, 20 ms per insert instead of 1).

OPTIONS["pool"] = {"max_size": N} keeps at most N idle connections per database. How many are
open at once is bounded by the callers (the permits in data_insertion.transactions).
"""

import contextlib
import threading
import time

from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.mysql import base

# An idle connection older than this is closed rather than reused: the server may have dropped
# it (wait_timeout), and a failed first statement would cost a retry.
MAX_IDLE_SECONDS = 300


class IdleConnections:
    """Connections handed back, newest first (a warm one is likelier to be alive)."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._lock = threading.Lock()
        self._idle: list[tuple[float, object]] = []

    def take(self):
        stale = []
        connection = None
        with self._lock:
            while self._idle:
                returned_at, candidate = self._idle.pop()
                if time.monotonic() - returned_at < MAX_IDLE_SECONDS:
                    connection = candidate
                    break
                stale.append(candidate)
        for each in stale:
            _close_quietly(each)
        return connection

    def give(self, connection) -> bool:
        with self._lock:
            if len(self._idle) < self.max_size:
                self._idle.append((time.monotonic(), connection))
                return True
        return False

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for _, connection in idle:
            _close_quietly(connection)


def _close_quietly(connection) -> None:
    with contextlib.suppress(Exception):  # an idle connection the server may have dropped
        connection.close()


class DatabaseWrapper(base.DatabaseWrapper):
    _pools: dict[tuple, IdleConnections] = {}
    _pools_guard = threading.Lock()
    _reused = False

    @property
    def pool(self) -> IdleConnections | None:
        options = self.settings_dict["OPTIONS"].get("pool")
        if not options or self.alias == NO_DB_ALIAS:
            return None
        settings = self.settings_dict
        key = (self.alias, settings["HOST"], settings["PORT"], settings["USER"], settings["NAME"])
        pool = self._pools.get(key)
        if pool is None:
            with self._pools_guard:
                pool = self._pools.setdefault(key, IdleConnections(options.get("max_size", 10)))
        return pool

    def close_pool(self) -> None:
        """Close this alias's idle connections and forget its pool, as PostgreSQL's backend
        does (before a fork: no connection may cross into another process)."""
        with self._pools_guard:
            pools = [key for key in self._pools if key[0] == self.alias]
            closing = [self._pools.pop(key) for key in pools]
        for pool in closing:
            pool.close()

    def get_connection_params(self) -> dict:
        params = super().get_connection_params()
        params.pop("pool", None)  # ours, not the driver's
        return params

    def get_new_connection(self, conn_params):
        pool = self.pool
        connection = pool.take() if pool is not None else None
        self._reused = connection is not None
        return connection if self._reused else super().get_new_connection(conn_params)

    def init_connection_state(self) -> None:
        # A reused connection keeps its session settings (isolation level, sql_mode).
        if not self._reused:
            super().init_connection_state()

    def _close(self) -> None:
        pool = self.pool
        reusable = (
            pool is not None
            and not self.errors_occurred  # the last statement failed: it may be broken
            and not self.in_atomic_block  # a transaction may be open on it
            and self.autocommit
        )
        if reusable and pool.give(self.connection):
            return
        super()._close()
