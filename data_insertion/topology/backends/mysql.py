"""MariaDB/MySQL (READ COMMITTED, where a locking read of a missing row blocks nobody): GET_LOCK on
each key's bucket, in sorted order, released explicitly after the transaction (COMMIT does not
release it)."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.db import DatabaseError, OperationalError, transaction

from ..connections import LockNotAcquired, take_permit
from .base import Backend, lock_bucket, lock_digest

# MariaDB waits this long for a named lock before giving up with a (retried) error.
MYSQL_LOCK_TIMEOUT_SECONDS = 30
# Named locks taken per statement on MariaDB (each is one expression of a SELECT).
MYSQL_LOCKS_PER_STATEMENT = 100


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
        prefix = f"ds_{lock_digest(database, 16).hex()}"
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
