"""What a run does around its inserts, on every database: migrate, check, describe, count, empty.

The engine calls these before and after the workers; the benchmark, the audit and the commands
share them.
"""

import time

from django.apps import apps
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, OperationalError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Max, Model

from . import reference_cache
from .persistence import count_existing, ids_by_alias
from .results import MODELS
from .topology import backend, is_transient, shardmap
from .topology.placement import APP_LABEL, DEFAULT_DATABASE

MIGRATION_ATTEMPTS = 5


class DatabaseUnavailable(Exception):
    """A database cannot be used: corrupt, read-only, unreachable. The message says which."""


def model_class(model: str) -> type[Model]:
    """The model class called `model` ("user", "product", "order")."""
    return apps.get_model(APP_LABEL, model)


def migrate_databases() -> None:
    """Apply pending migrations to every database and make sure each one takes writes.

    A missing or empty SQLite file is created and migrated. A database that cannot be used
    raises DatabaseUnavailable before any record is attempted. The default database comes
    first: it holds the shard maps, which may name databases the environment does not.
    """
    _prepare(DEFAULT_DATABASE)
    try:
        shardmap.load_shard_maps()
    except DatabaseError as error:
        raise DatabaseUnavailable(f"{DEFAULT_DATABASE} (the shard maps): {error}") from error
    for alias in list(connections.settings):
        if alias != DEFAULT_DATABASE:
            _prepare(alias)


def _prepare(alias: str) -> None:
    """Migrate `alias` and check it takes writes; DatabaseUnavailable when it cannot."""
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
    # create the tables ("already exists") or add a column ("duplicate column name"), both
    # add the content types and permissions of Django's post_migrate (UNIQUE constraint
    # failed), and both open the file to switch it to WAL, which SQLite refuses without
    # waiting for its timeout ("database is locked" while connecting). Trying again, the
    # loser finds what the winner committed: nothing left to do.
    for attempt in range(MIGRATION_ATTEMPTS):
        try:
            # migrate itself takes 25 ms per database to find nothing to do
            if _pending_migrations(alias):
                call_command("migrate", database=alias, verbosity=0, interactive=False)
            return
        except DatabaseError as error:
            if not _lost_migration_race(alias, error) or attempt == MIGRATION_ATTEMPTS - 1:
                raise
            connections[alias].close()
            time.sleep(0.2 * (attempt + 1))


def _pending_migrations(alias: str) -> bool:
    executor = MigrationExecutor(connections[alias])
    return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def _lost_migration_race(alias: str, error: DatabaseError) -> bool:
    # The winner's tables, columns, or content types were committed after this run planned.
    if isinstance(error, IntegrityError) or any(
        sign in str(error) for sign in ("already exists", "duplicate column name")
    ):
        return True
    # A lock that outlasted the timeout on an open connection is not a race: report it.
    opening = connections[alias].connection is None
    return opening and isinstance(error, OperationalError) and is_transient(error)


def describe_databases() -> dict[str, dict[str, str]]:
    """Each model database's engine and location, as the summary shows them."""
    return {
        alias: describe_database(alias)
        for model in MODELS
        for alias in shardmap.model_aliases(model)
    }


def describe_database(alias: str) -> dict[str, str]:
    """An alias's engine and where it lives: a file, or a host and database; no password."""
    return {"engine": connections[alias].vendor, "location": backend(alias).location}


def count_existing_ids(model: type[Model], ids) -> int:
    """How many of `ids` are rows of `model` now: this run's own rows, whatever else writes."""
    return sum(count_existing_ids_by_database(model, ids).values())


def count_existing_ids_by_database(model: type[Model], ids) -> dict[str, int]:
    """How many of `ids` each of the model's databases holds, each id looked up where its
    logical shard maps. Counted again if a rebalance switched the map meanwhile (the old
    database deletes a moved shard's rows after the switch)."""
    name = model._meta.model_name
    while True:
        version = shardmap.map_version(name) if shardmap.layout(name) else None
        counts = {
            alias: count_existing(model, alias, "id", values)
            for alias, values in ids_by_alias(model, ids).items()
        }
        if version is None or shardmap.map_version(name) == version:
            return counts
        shardmap.reload(name)


def count_rows() -> dict[str, int]:
    """Rows in each model's table (over all its databases)."""
    return {
        model: sum(
            model_class(model)._base_manager.using(alias).count()
            for alias in shardmap.model_aliases(model)
        )
        for model in MODELS
    }


def largest_id(model: type[Model]) -> int:
    return max(
        model._base_manager.using(alias).aggregate(largest=Max("id"))["largest"] or 0
        for alias in shardmap.model_aliases(model._meta.model_name)
    )


def empty_databases() -> None:
    """Delete every row of the three models, in one statement per database (no row is loaded
    nor signalled), and tell the shared cache that none of them exists any more."""
    for model in MODELS:
        table = model_class(model)._meta.db_table
        for alias in shardmap.model_aliases(model):
            with connections[alias].cursor() as cursor:
                cursor.execute(f"DELETE FROM {connections[alias].ops.quote_name(table)}")
    reference_cache.forget_all()
