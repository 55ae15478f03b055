"""The one insert path and the existence lookups, for the engine and the admin alike.

The statements are built once per model and database and issue the same SQL as `Model.save()`,
`bulk_create()` and `filter(...__in=...)`, with every value prepared as those prepare it
(`Field.pre_save`, then `get_db_prep_save`), so defaults and any field's own pre-save step hold
here too. One difference, measured: `auto_now`/`auto_now_add` fields take one timestamp per
statement, prepared once, where save() asks the clock and converts its answer for every row
(3-4 µs a row, a tenth of group commit's time per record). tests/test_persistence.py compares
each model's row, every column, with the one `save()` writes. The statements skip the ORM's
query building, which was half of the time of an insert (see the README's performance
section). Each runs on the cursor its database's backend gives (topology.backends): sqlite3's
own on SQLite, Django's, counted against the connection cap, on a server.
"""

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from django.db import connections
from django.db.models import Field, Model
from django.utils import timezone

from .topology import backend, database_for, shardmap
from .topology.shards import id_range, make_id

# Values per IN (...) lookup: well under every backend's limit on query parameters.
LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class _InsertPlan:
    head: str  # INSERT INTO "table" ("a", "b") VALUES
    row: str  # (%s, %s)
    returning: str  # RETURNING "id"
    fields: tuple[Field, ...]
    # Each field with where its value comes from: STAMPED (the statement's timestamp),
    # COMPUTED (its own pre_save) or STORED (the instance's value: what Field.pre_save returns).
    sources: tuple[tuple[Field, str], ...]


STAMPED, COMPUTED, STORED = "stamped", "computed", "stored"


def _source(field: Field) -> str:
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return STAMPED
    if type(field).pre_save is not Field.pre_save:
        return COMPUTED
    return STORED


@cache
def _insert_plan(model: type[Model], alias: str, with_id: bool = False) -> _InsertPlan:
    """The INSERT of `model` on `alias`; `with_id`: the id is given (a sharded model's, made in
    application code), not left to the database."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if with_id or not f.primary_key)
    return _InsertPlan(
        head=f"INSERT INTO {quote(meta.db_table)} "
        f"({', '.join(quote(f.column) for f in fields)}) VALUES ",
        row=f"({', '.join([backend(alias).placeholder] * len(fields))})",
        returning=f" RETURNING {quote(meta.pk.column)}",
        fields=fields,
        sources=tuple((field, _source(field)) for field in fields),
    )


def _row_params(instances: list[Model], plan: _InsertPlan, connection) -> list:
    """Every row's values, flat, prepared as Model.save() prepares them; one timestamp for the
    statement's auto_now(_add) fields, prepared once."""
    now = timezone.now()
    stamps: dict[Field, object] = {}
    params = []
    append = params.append
    for instance in instances:
        for field, source in plan.sources:
            if source is STORED:
                append(field.get_db_prep_save(getattr(instance, field.attname), connection))
            elif source is COMPUTED:
                append(field.get_db_prep_save(field.pre_save(instance, True), connection))
            else:
                setattr(instance, field.attname, now)
                if field not in stamps:
                    stamps[field] = field.get_db_prep_save(now, connection)
                append(stamps[field])
    return params


def mark_saved(instance: Model, pk: int, alias: str) -> None:
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = alias


def insert_rows(instances: list[Model], alias: str) -> None:
    """INSERT instances of one model into `alias`, many rows per statement where the backend
    returns their keys; set each primary key. Call inside a write transaction."""
    database = backend(alias)
    connection = database.connection
    if instances[0].pk is not None:
        _insert_with_ids(instances, alias)
        return
    plan = _insert_plan(type(instances[0]), alias)
    features = connection.features
    with database.cursor(connection) as cursor:
        if len(instances) == 1 or not features.can_return_rows_from_bulk_insert:
            for instance in instances:
                _insert_one(instance, plan, cursor, connection, alias)
            return
        size = max(1, connection.ops.bulk_batch_size(plan.fields, instances))
        for start in range(0, len(instances), size):
            chunk = instances[start : start + size]
            cursor.execute(
                plan.head + ", ".join([plan.row] * len(chunk)) + plan.returning,
                _row_params(chunk, plan, connection),
            )
            # Rows come back in insertion order on every backend Django trusts with this.
            for instance, (pk,) in zip(chunk, cursor.fetchall(), strict=True):
                mark_saved(instance, pk, alias)


def _insert_with_ids(instances: list[Model], alias: str) -> None:
    """INSERT rows whose ids are already set (sharded models: assign_ids())."""
    database = backend(alias)
    connection = database.connection
    plan = _insert_plan(type(instances[0]), alias, with_id=True)
    size = max(1, connection.ops.bulk_batch_size(plan.fields, instances))
    with database.cursor(connection) as cursor:
        for start in range(0, len(instances), size):
            chunk = instances[start : start + size]
            cursor.execute(
                plan.head + ", ".join([plan.row] * len(chunk)),
                _row_params(chunk, plan, connection),
            )
            for instance in chunk:
                mark_saved(instance, instance.pk, alias)


def assign_ids(instances: list[Model], logical_shards: list[int], alias: str) -> None:
    """Give each instance the next id of its logical shard on `alias`: one more than the largest
    there. Call inside the write transaction that holds the logical shards' locks (their
    keys), so no other writer takes the same number meanwhile; ids of deleted rows at the top
    of a logical shard may be given again, as SQLite does with rowids."""
    table = connections[alias].ops.quote_name(instances[0]._meta.db_table)
    marker = backend(alias).placeholder
    # BETWEEN: the last logical shard's upper bound, 2**63, fits no 64-bit column.
    sql = f"SELECT MAX(id) FROM {table} WHERE id BETWEEN {marker} AND {marker}"
    largest: dict[int, int] = {}
    with backend(alias).cursor() as cursor:
        for shard in sorted(set(logical_shards)):
            low, high = id_range(shard)
            cursor.execute(sql, (low, high - 1))
            found = cursor.fetchone()[0]
            largest[shard] = make_id(shard, 1) - 1 if found is None else found
    for instance, shard in zip(instances, logical_shards, strict=True):
        largest[shard] = instance.pk = make_id(shard, largest[shard] - id_range(shard)[0] + 1)


def _insert_one(instance: Model, plan: _InsertPlan, cursor, connection, alias: str) -> None:
    params = _row_params([instance], plan, connection)
    if connection.features.can_return_columns_from_insert:
        cursor.execute(plan.head + plan.row + plan.returning, params)
        (pk,) = cursor.fetchone()
    else:  # MySQL, MariaDB before 10.5: the id is asked afterwards
        cursor.execute(plan.head + plan.row, params)
        meta = instance._meta
        pk = connection.ops.last_insert_id(cursor, meta.db_table, meta.pk.column)
    mark_saved(instance, pk, alias)


@cache
def _lookup_sql(model: type[Model], alias: str, columns: tuple[str, ...], count: int) -> str:
    quote = connections[alias].ops.quote_name
    placeholders = ", ".join([backend(alias).placeholder] * count)
    selected = ", ".join(quote(column) for column in columns)
    return (
        f"SELECT {selected} FROM {quote(model._meta.db_table)} "
        f"WHERE {quote(columns[0])} IN ({placeholders})"
    )


def existing_rows(
    model: type[Model], alias: str, columns: tuple[str, ...], values: Iterable
) -> list[tuple]:
    """The rows of `model` on `alias` whose first column is one of `values`, as tuples of
    `columns` (indexed lookups, in chunks)."""
    wanted = list(dict.fromkeys(values))
    found: list[tuple] = []
    with backend(alias).cursor() as cursor:
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            cursor.execute(_lookup_sql(model, alias, columns, len(chunk)), chunk)
            found.extend(cursor.fetchall())
    return found


def existing_values(model: type[Model], alias: str, column: str, values: Iterable) -> set:
    """Which of `values` appear in `column` of `model`'s table on `alias`."""
    return {value for (value,) in existing_rows(model, alias, (column,), values)}


def count_existing(model: type[Model], alias: str, column: str, values: Iterable) -> int:
    """How many of `values` (distinct) appear in `column`: counted in chunks, held nowhere.
    Bookkeeping: whatever faults are injected, the run's rows are counted."""
    quote = connections[alias].ops.quote_name
    placeholder = backend(alias).placeholder
    select = f"SELECT count(*) FROM {quote(model._meta.db_table)} WHERE {quote(column)} IN "
    total = 0
    chunk: list = []
    with backend(alias).housekeeping_cursor() as cursor:
        for value in values:
            chunk.append(value)
            if len(chunk) == LOOKUP_CHUNK:
                cursor.execute(select + f"({', '.join([placeholder] * len(chunk))})", chunk)
                total += cursor.fetchone()[0]
                chunk = []
        if chunk:
            cursor.execute(select + f"({', '.join([placeholder] * len(chunk))})", chunk)
            total += cursor.fetchone()[0]
    return total


def existing_ids(model: type[Model], ids: Iterable[int]) -> set[int]:
    """Which of `ids` are rows of `model`: looked up in its one database, or in the database of
    each id's logical shard. A lookup that misses while a rebalance switched the map is asked
    again on the new map (the old database deletes a moved shard's rows after the switch)."""
    wanted = [value for value in dict.fromkeys(ids) if isinstance(value, int)]
    layout = shardmap.layout(model._meta.model_name)
    if layout is None:
        return existing_values(model, database_for(model._meta.model_name), "id", wanted)
    while True:
        by_alias: dict[str, list[int]] = {}
        for value in wanted:
            by_alias.setdefault(layout.alias_of_id(value), []).append(value)
        found = set()
        for alias, values in by_alias.items():
            found |= existing_values(model, alias, "id", values)
        if len(found) == len(wanted) or shardmap.map_version(layout.model) == layout.version:
            return found
        layout = shardmap.reload(layout.model)


def ids_by_alias(model: type[Model], ids: Iterable[int]) -> dict[str, list[int]]:
    """`ids` grouped by the database their logical shard maps to now."""
    layout = shardmap.layout(model._meta.model_name)
    if layout is None:
        return {database_for(model._meta.model_name): list(ids)}
    grouped: dict[str, list[int]] = {}
    for value in ids:
        grouped.setdefault(layout.alias_of_id(value), []).append(value)
    return grouped


# A sharded model's list goes this deep at most: each page reads offset + limit rows from
# every one of its databases.
GATHERED_ROWS_MAX = 100_000


class GatheredRows:
    """A sharded model's stored rows across all its databases, in id order, sliced like a
    QuerySet (what a paginated API list needs): each slice reads the first `stop` rows of
    every database and merges them. Beyond GATHERED_ROWS_MAX rows a slice comes back empty."""

    def __init__(self, model: type[Model], aliases: Iterable[str]) -> None:
        self.model = model
        self.aliases = list(aliases)

    def __len__(self) -> int:
        return sum(self.model._base_manager.using(alias).count() for alias in self.aliases)

    def __getitem__(self, window: slice) -> list[Model]:
        start, stop = window.start or 0, window.stop
        if stop is None or stop > GATHERED_ROWS_MAX:
            stop = GATHERED_ROWS_MAX
        if start >= stop:
            return []
        streams = [
            self.model._base_manager.using(alias).order_by("pk")[:stop] for alias in self.aliases
        ]
        merged = heapq.merge(*streams, key=lambda row: row.pk)
        return list(itertools.islice(merged, start, stop))


def stored_rows(model: type[Model]):
    """Every stored row of `model` in id order: a QuerySet on its database, or, sharded,
    GatheredRows over all of them."""
    layout = shardmap.layout(model._meta.model_name)
    if layout is None:
        return model._base_manager.using(database_for(model._meta.model_name)).order_by("pk")
    return GatheredRows(model, layout.aliases)
