"""PostgreSQL (READ COMMITTED): a transaction-scoped advisory lock on each key's bucket, all taken
in one statement in sorted order, released by COMMIT or ROLLBACK."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.db import OperationalError, transaction

from ..connections import take_permit
from .base import Backend, advisory_lock_number


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

    # psycopg_pool's errors (PoolClosed, PoolTimeout) come from a module of their own.
    driver_modules = ("psycopg", "psycopg_pool")

    @classmethod
    def transient(cls, error: OperationalError) -> bool:
        from psycopg_pool import PoolClosed  # here: a run on SQLite never loads psycopg (58 ms)

        cause = error.__cause__
        # A pool closed under the transaction (a new one replaced it after an outage): the
        # next attempt takes a connection from the pool now in place.
        if isinstance(cause, PoolClosed):
            return True
        return getattr(cause, "sqlstate", None) in cls.TRANSIENT_SQLSTATES
