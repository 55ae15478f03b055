"""What a run does around its inserts, on every database: migrate, check, describe, count, empty.

The engine calls these before and after the workers; the benchmark, the audit and the commands
share them.
"""

import time

from django.apps import apps
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, OperationalError, connections
from django.db.models import Max, Model

from .persistence import count_existing
from .results import MODELS
from .topology import ALIASES, backend, database_for_model, is_transient
from .topology.placement import APP_LABEL, MODEL_DATABASES

MIGRATION_ATTEMPTS = 5


class DatabaseUnavailable(Exception):
    """A database cannot be used: corrupt, read-only, unreachable. The message says which."""


def model_class(model: str) -> type[Model]:
    """The model class called `model` ("user", "product", "order")."""
    return apps.get_model(APP_LABEL, model)


def migrate_databases() -> None:
    """Apply pending migrations to every database and make sure each one takes writes.

    A missing or empty SQLite file is created and migrated. A database that cannot be used
    raises DatabaseUnavailable before any record is attempted.
    """
    for alias in ALIASES:
        try:
            backend(alias).check_location()
            _migrate(alias)
            backend(alias).check_writable()
        except (DatabaseError, OSError) as error:
            location = describe_database(alias)["location"]
            raise DatabaseUnavailable(f"{alias} ({location}): {error}") from error
        finally:
            connections[alias].close()


def _migrate(alias: str) -> None:
    # Two first runs at once race on a new file, and the one that loses fails at once: both
    # create the tables ("already exists"), both add the content types and permissions of
    # Django's post_migrate (UNIQUE constraint failed), and both open the file to switch it to
    # WAL, which SQLite refuses without waiting for its timeout ("database is locked" while
    # connecting). Trying again, the loser finds what the winner committed: nothing left to do.
    for attempt in range(MIGRATION_ATTEMPTS):
        try:
            call_command("migrate", database=alias, verbosity=0, interactive=False)
            return
        except DatabaseError as error:
            if not _lost_migration_race(alias, error) or attempt == MIGRATION_ATTEMPTS - 1:
                raise
            connections[alias].close()
            time.sleep(0.2 * (attempt + 1))


def _lost_migration_race(alias: str, error: DatabaseError) -> bool:
    if isinstance(error, IntegrityError) or "already exists" in str(error):
        return True
    # A lock that outlasted the timeout on an open connection is not a race: report it.
    opening = connections[alias].connection is None
    return opening and isinstance(error, OperationalError) and is_transient(error)


def describe_databases() -> dict[str, dict[str, str]]:
    """Each model database's engine and location, as the summary shows them."""
    return {alias: describe_database(alias) for alias in MODEL_DATABASES.values()}


def describe_database(alias: str) -> dict[str, str]:
    """An alias's engine and where it lives: a file, or a host and database; no password."""
    return {"engine": connections[alias].vendor, "location": backend(alias).location}


def count_existing_ids(model: type[Model], ids) -> int:
    """How many of `ids` are rows of `model` now: this run's own rows, whatever else writes."""
    return count_existing(model, database_for_model(model), "id", ids)


def count_rows() -> dict[str, int]:
    """Rows in each model's table."""
    return {model: model_class(model).objects.count() for model in MODELS}


def largest_id(model: type[Model]) -> int:
    return model.objects.aggregate(largest=Max("id"))["largest"] or 0


def empty_databases() -> None:
    for model in MODELS:
        model_class(model).objects.all().delete()
