"""The statements every insert runs, built once per model and database.

They issue the same SQL as `Model.save()`, `bulk_create()` and `filter(...__in=...)` and prepare
values through each field exactly as those do, without building a query per call: the ORM's
per-call overhead was half of the time of an insert (see the README's performance section).
On SQLite they run on the DB-API cursor of Django's connection, inside Django's error
translation: through Django's cursor wrapper (query conversion, debug and wrapper hooks) a
one-row lookup took 13.7 µs, on the sqlite3 cursor 3.7 µs. On a server each takes its
database's connection through transactions.use_connection, so that the reads an order's checks
make on the users and products databases count against their connection caps.
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

from django.db import ProgrammingError, connections
from django.db.models import Field, Model
from django.utils import timezone

from .transactions import in_dbapi_transaction, use_connection

# Values per IN (...) lookup: well under every backend's limit on query parameters.
LOOKUP_CHUNK = 500


def _placeholder(connection) -> str:
    """The DB-API parameter marker of the cursors _cursor() gives: sqlite3's own, or Django's."""
    return "?" if connection.vendor == "sqlite" else "%s"


def _connection(alias: str):
    connection = connections[alias]
    use_connection(connection)
    return connection


@contextmanager
def _cursor(connection) -> Iterator:
    if connection.vendor != "sqlite":
        with connection.cursor() as cursor:
            yield cursor
        return
    if connection.connection is None:
        if in_dbapi_transaction(connection.alias):
            # A new connection would autocommit what the transaction was to hold.
            raise ProgrammingError("the connection was closed inside a write transaction")
        connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()


@dataclass(frozen=True)
class _InsertPlan:
    head: str  # INSERT INTO "table" ("a", "b") VALUES
    row: str  # (%s, %s)
    returning: str  # RETURNING "id"
    fields: tuple[Field, ...]
    stamped: tuple[Field, ...]  # the auto_now_add fields


@cache
def _insert_plan(model: type[Model], alias: str) -> _InsertPlan:
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
    return _InsertPlan(
        head=f"INSERT INTO {quote(meta.db_table)} "
        f"({', '.join(quote(f.column) for f in fields)}) VALUES ",
        row=f"({', '.join([_placeholder(connection)] * len(fields))})",
        returning=f" RETURNING {quote(meta.pk.column)}",
        fields=fields,
        stamped=tuple(f for f in fields if getattr(f, "auto_now_add", False)),
    )


def _stamped_params(instances: list[Model], plan: _InsertPlan, connection) -> list:
    """Every row's values, flat; auto_now_add fields get one timestamp for the transaction."""
    now = timezone.now()
    stamps = {field.attname: field.get_db_prep_save(now, connection) for field in plan.stamped}
    params = []
    for instance in instances:
        for field in plan.fields:
            if field.attname in stamps:
                setattr(instance, field.attname, now)
                params.append(stamps[field.attname])
            else:
                params.append(field.get_db_prep_save(getattr(instance, field.attname), connection))
    return params


def insert_row(instance: Model, alias: str) -> None:
    """INSERT `instance` into `alias` and set its primary key."""
    connection = _connection(alias)
    plan = _insert_plan(type(instance), alias)
    can_return = connection.features.can_return_columns_from_insert
    with _cursor(connection) as cursor:
        cursor.execute(
            plan.head + plan.row + (plan.returning if can_return else ""),
            _stamped_params([instance], plan, connection),
        )
        if can_return:
            (instance.pk,) = cursor.fetchone()
        else:
            meta = instance._meta
            instance.pk = connection.ops.last_insert_id(cursor, meta.db_table, meta.pk.column)
    instance._state.adding = False
    instance._state.db = alias


def insert_rows(instances: list[Model], alias: str) -> None:
    """INSERT many instances of one model with multi-row statements; set their primary keys."""
    connection = _connection(alias)
    if not connection.features.can_return_rows_from_bulk_insert:
        for instance in instances:
            insert_row(instance, alias)
        return
    plan = _insert_plan(type(instances[0]), alias)
    size = max(1, connection.ops.bulk_batch_size(plan.fields, instances))
    with _cursor(connection) as cursor:
        for start in range(0, len(instances), size):
            chunk = instances[start : start + size]
            params = _stamped_params(chunk, plan, connection)
            cursor.execute(plan.head + ", ".join([plan.row] * len(chunk)) + plan.returning, params)
            # Rows come back in insertion order on every backend Django trusts with this.
            for instance, (pk,) in zip(chunk, cursor.fetchall(), strict=True):
                instance.pk = pk
                instance._state.adding = False
                instance._state.db = alias


@cache
def _lookup_sql(model: type[Model], alias: str, column: str, count: int) -> str:
    connection = connections[alias]
    quote = connection.ops.quote_name
    placeholders = ", ".join([_placeholder(connection)] * count)
    table = quote(model._meta.db_table)
    return f"SELECT {quote(column)} FROM {table} WHERE {quote(column)} IN ({placeholders})"


def existing_values(model: type[Model], alias: str, column: str, values: Iterable) -> set:
    """Which of `values` appear in `column` of `model`'s table on `alias` (indexed lookups)."""
    wanted = list(dict.fromkeys(values))
    found = set()
    with _cursor(_connection(alias)) as cursor:
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            cursor.execute(_lookup_sql(model, alias, column, len(chunk)), chunk)
            found.update(value for (value,) in cursor.fetchall())
    return found


def count_existing(model: type[Model], alias: str, column: str, values: Iterable) -> int:
    """How many of `values` (distinct) appear in `column`: counted in chunks, held nowhere."""
    connection = _connection(alias)
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    total = 0
    chunk: list = []
    with _cursor(connection) as cursor:
        for value in values:
            chunk.append(value)
            if len(chunk) == LOOKUP_CHUNK:
                total += _count_chunk(cursor, table, quote(column), chunk, connection)
                chunk = []
        if chunk:
            total += _count_chunk(cursor, table, quote(column), chunk, connection)
    return total


def _count_chunk(cursor, table: str, column: str, chunk: list, connection) -> int:
    placeholders = ", ".join([_placeholder(connection)] * len(chunk))
    cursor.execute(f"SELECT count(*) FROM {table} WHERE {column} IN ({placeholders})", chunk)
    return cursor.fetchone()[0]
