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

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from django.db import connections
from django.db.models import Field, Model
from django.utils import timezone

from .topology import backend

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
def _insert_plan(model: type[Model], alias: str) -> _InsertPlan:
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
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
    statement's auto_now(_add) fields."""
    now = timezone.now()
    stamps = {
        field: field.get_db_prep_save(now, connection)
        for field, source in plan.sources
        if source == STAMPED
    }
    params = []
    append = params.append
    for instance in instances:
        for field, source in plan.sources:
            if source == STORED:
                append(field.get_db_prep_save(getattr(instance, field.attname), connection))
            elif source == COMPUTED:
                append(field.get_db_prep_save(field.pre_save(instance, True), connection))
            else:
                setattr(instance, field.attname, now)
                append(stamps[field])
    return params


def _saved(instance: Model, pk: int, alias: str) -> None:
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = alias


def insert_rows(instances: list[Model], alias: str) -> None:
    """INSERT instances of one model into `alias`, many rows per statement where the backend
    returns their keys; set each primary key. Call inside a write transaction."""
    database = backend(alias)
    connection = database.connection
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
                _saved(instance, pk, alias)


def _insert_one(instance: Model, plan: _InsertPlan, cursor, connection, alias: str) -> None:
    params = _row_params([instance], plan, connection)
    if connection.features.can_return_columns_from_insert:
        cursor.execute(plan.head + plan.row + plan.returning, params)
        (pk,) = cursor.fetchone()
    else:  # MySQL, MariaDB before 10.5: the id is asked afterwards
        cursor.execute(plan.head + plan.row, params)
        meta = instance._meta
        pk = connection.ops.last_insert_id(cursor, meta.db_table, meta.pk.column)
    _saved(instance, pk, alias)


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
