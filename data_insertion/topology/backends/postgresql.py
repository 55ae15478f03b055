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

    driver_modules = ("psycopg",)

    @classmethod
    def transient(cls, error: OperationalError) -> bool:
        return getattr(error.__cause__, "sqlstate", None) in cls.TRANSIENT_SQLSTATES
