"""The shard map at run time: each sharded model's assignment of logical shards to databases,
read from the default database, cached per process, confirmed inside every write transaction.

A model is sharded when its configured count (DS_SHARDS, USERS_SHARDS, ...) is above one, or
when the default database already holds its map (load_shard_maps(), which every command runs
at start): then the map, not the environment, says where each logical shard lives. A model
in one database (the default) never reads the map: its path is the one it always was.

The cut-over protocol, shared with rebalance.py: a writer picks a database from its cached
map, takes the write lock of the logical shards it writes (their lock keys, on that database),
and then confirm()s that the map's version is still the one it routed by. A rebalance bumps the
version when it freezes logical shards, then takes the same locks on the old database (so the
writers already past confirm() finish first), copies what they wrote, and bumps it again when
it switches them. So no write is committed to the old database after a freeze: it is retried
on the new map, waiting (bounded) while its logical shard is frozen.
"""

import functools
import threading
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, transaction

from .placement import DEFAULT_DATABASE, MODEL_DATABASES
from .shards import (
    LOGICAL_SHARDS,
    database_index,
    even_assignment,
    logical_shard_of_email,
    logical_shard_of_id,
    next_product_shard,
    shard_alias,
    spread_shard,
)

# A write to a logical shard in its cut-over waits at most this long for the switch.
CUT_OVER_WAIT_SECONDS = 60.0
MAP_TABLE = "data_insertion_shardmap"


class ShardMapChanged(DatabaseError):
    """The map changed after a write picked its database: roll back and route again."""


@dataclass(frozen=True)
class ShardLayout:
    """One version of one model's map."""

    model: str
    version: int
    databases: int
    assignment: str  # a character per logical shard: its database's index
    target: str  # the assignment a rebalance under way moves to, or ""
    frozen: frozenset[int]  # logical shards in their cut-over

    @property
    def aliases(self) -> tuple[str, ...]:
        """The aliases of the databases that hold logical shards, by index."""
        return tuple(shard_alias(MODEL_DATABASES[self.model], i) for i in range(self.databases))

    def alias_of_shard(self, logical_shard: int) -> str:
        index = database_index(self.assignment[logical_shard])
        return shard_alias(MODEL_DATABASES[self.model], index)

    def alias_of_id(self, row_id: int) -> str:
        return self.alias_of_shard(logical_shard_of_id(row_id))

    def shards_of(self, alias: str) -> list[int]:
        """The logical shards the map puts on `alias`."""
        return [shard for shard in range(LOGICAL_SHARDS) if self.alias_of_shard(shard) == alias]


_layouts: dict[str, ShardLayout | None] = {}
_guard = threading.Lock()


def layout(model: str) -> ShardLayout | None:
    """The model's map as this process last read it; None for a model in one database."""
    found = _layouts.get(model)  # asked once per transaction: no exception on the way
    if found is not None:
        return found
    if _shard_counts()[model] == 1:
        return None  # not sharded unless load_shard_maps() found a map
    return reload(model)


@functools.cache
def _shard_counts() -> dict[str, int]:
    """settings.SHARD_COUNTS itself (the benchmark changes it in place), without a lookup
    through the lazy settings object on every transaction."""
    return settings.SHARD_COUNTS


def cached_layout(model: str) -> ShardLayout | None:
    """The map if this process has read it, without asking the database (for the router)."""
    return _layouts.get(model)


def reload(model: str, create: bool = True) -> ShardLayout | None:
    """Read the model's map again (creating it, evenly, for a sharded model that has none,
    unless `create` is off: the audit only reads)."""
    row = _read_map(model)
    if row is None and create and settings.SHARD_COUNTS[model] > 1:
        row = _create_map(model, settings.SHARD_COUNTS[model])
    found = None if row is None else _layout_of(model, row)
    if found is not None:
        register_aliases(model, max(found.databases, _target_databases(found)))
    with _guard:
        _layouts[model] = found
    return found


def load_shard_maps(create: bool = True) -> None:
    """Read every model's map from the default database (migrated): commands call this first,
    so that a map, once created, is obeyed whatever the environment says."""
    for model in MODEL_DATABASES:
        reload(model, create)


def forget_shard_maps() -> None:
    """Drop the cached maps (a test that deletes them, a rebalance that rewrites them)."""
    with _guard:
        _layouts.clear()


def confirm(current: ShardLayout) -> None:
    """Inside a write transaction, after its locks: raise ShardMapChanged unless the map is
    still the version `current` routed by."""
    with connections[DEFAULT_DATABASE].cursor() as cursor:
        cursor.execute(f"SELECT version FROM {MAP_TABLE} WHERE model = %s", [current.model])
        row = cursor.fetchone()
    if row is None or row[0] != current.version:
        raise ShardMapChanged(f"the {current.model}s' shard map changed; routing again")


def map_version(model: str) -> int | None:
    """The version of the model's map in the default database now."""
    row = _read_map(model)
    return None if row is None else row[5]


def logical_shard_of(instance) -> int:
    """Where a record lives: a user by its case-folded email, an order with its user, a product
    (new) round the logical shards; a stored row by its id."""
    model = instance._meta.model_name
    if model == "user":
        return logical_shard_of_email(instance.email_normalized)
    if model == "order":
        return logical_shard_of_id(instance.user_id)
    if instance.pk is not None:
        return logical_shard_of_id(instance.pk)
    # Chosen once per record, so a retried write goes to the same logical shard; from its
    # identity when it has one, so that a redone slice looks for it where it went the first time.
    if getattr(instance, "_logical_shard", None) is None:
        key = instance.record_key
        instance._logical_shard = next_product_shard() if key is None else spread_shard(key)
    return instance._logical_shard


def shard_lock_key(model: str, logical_shard: int) -> str:
    """The lock a write to `logical_shard` holds in its database, and the rebalance takes to
    drain those writes before a cut-over (backends.write_transaction(lock_keys))."""
    return f"shard:{model}:{logical_shard}"


def register_aliases(model: str, databases: int) -> None:
    """Make users_db_0 ... users_db_{databases-1} known to Django, configured as settings
    configures them, for the aliases the environment did not already name (a map or a
    rebalance that uses more databases than DS_SHARDS says)."""
    import os

    from .databases import shard_database

    for index in range(databases):
        alias = shard_alias(MODEL_DATABASES[model], index)
        if alias in connections.settings:
            continue
        database = shard_database(
            model,
            index,
            os.environ,
            settings.DATA_DIR,
            settings.SQLITE_TIMEOUT_SECONDS,
            settings.MAX_CONNECTIONS_PER_DATABASE,
        )
        add_database(alias, database)


def add_database(alias: str, database: dict) -> None:
    """Make `alias` known to Django at run time, configured as `database` (a DATABASES entry)."""
    with _guard:
        settings.DATABASES[alias] = database
        # configure_settings() fills in Django's defaults, and insists on a default alias.
        both = {DEFAULT_DATABASE: dict(settings.DATABASES[DEFAULT_DATABASE]), alias: database}
        connections.settings[alias] = connections.configure_settings(both)[alias]


def remove_database(alias: str) -> None:
    """Forget an alias add_database() made (this thread's connection to it closed first)."""
    connections[alias].close()
    with _guard:
        del connections[alias]
        del connections.settings[alias]
        settings.DATABASES.pop(alias, None)


def model_aliases(model: str) -> tuple[str, ...]:
    """The databases holding the model's rows: its map's, or its one alias."""
    found = layout(model)
    return (MODEL_DATABASES[model],) if found is None else found.aliases


def _target_databases(found: ShardLayout) -> int:
    if not found.target:
        return 0
    return 1 + max(database_index(digit) for digit in set(found.target))


def _read_map(model: str) -> tuple | None:
    with connections[DEFAULT_DATABASE].cursor() as cursor:
        cursor.execute(
            f"SELECT model, database_count, assignment, target, frozen, version FROM {MAP_TABLE} "
            "WHERE model = %s",
            [model],
        )
        return cursor.fetchone()


def _create_map(model: str, databases: int) -> tuple:
    """An even map over `databases` databases; two processes creating it at once agree (the
    model name is the row's primary key: the loser reads the winner's)."""
    try:
        with (
            transaction.atomic(using=DEFAULT_DATABASE),
            connections[DEFAULT_DATABASE].cursor() as cursor,
        ):
            cursor.execute(
                f"INSERT INTO {MAP_TABLE} "
                "(model, database_count, assignment, target, frozen, version) "
                "VALUES (%s, %s, %s, '', '', 1)",
                [model, databases, even_assignment(databases)],
            )
    except IntegrityError:
        pass
    return _read_map(model)


def _layout_of(model: str, row: tuple) -> ShardLayout:
    _, databases, assignment, target, frozen, version = row
    return ShardLayout(
        model=model,
        version=version,
        databases=databases,
        assignment=assignment,
        target=target,
        frozen=frozenset(int(shard) for shard in frozen.split(",") if shard),
    )
