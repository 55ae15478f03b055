"""The statements every insert runs, built once per model and database.

They issue the same SQL as `Model.save()`, `bulk_create()` and `filter(...__in=...)` and prepare
values through each field exactly as those do, without building a query per call: the ORM's
per-call overhead was half of the time of an insert (see the README's performance section).
Each takes its database's connection through transactions.use_connection, so that the reads an
order's checks make on the users and products databases count against their connection caps.
"""

from collections.abc import Iterable
from functools import cache

from django.db import connections
from django.db.models import Field, Model
from django.utils import timezone

from .transactions import use_connection

# Values per IN (...) lookup: well under every backend's limit on query parameters.
LOOKUP_CHUNK = 500


@cache
def _insert_plan(model: type[Model], alias: str) -> tuple[str, tuple[Field, ...], str, str]:
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
    head = f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
    row = f"({', '.join(['%s'] * len(fields))})"
    returning = f" RETURNING {quote(meta.pk.column)}"
    return head + "VALUES ", fields, row, returning


def _stamped_params(instances: list[Model], fields: tuple[Field, ...], connection) -> list:
    """Every row's values, flat; auto_now_add fields get one timestamp for the transaction."""
    now = timezone.now()
    stamps = {
        field.attname: field.get_db_prep_save(now, connection)
        for field in fields
        if getattr(field, "auto_now_add", False)
    }
    params = []
    for instance in instances:
        for field in fields:
            if field.attname in stamps:
                setattr(instance, field.attname, now)
                params.append(stamps[field.attname])
            else:
                params.append(field.get_db_prep_save(getattr(instance, field.attname), connection))
    return params


def _connection(alias: str):
    use_connection(alias)
    return connections[alias]


def insert_row(instance: Model, alias: str) -> None:
    """INSERT `instance` into `alias` and set its primary key."""
    connection = _connection(alias)
    head, fields, row, returning = _insert_plan(type(instance), alias)
    can_return = connection.features.can_return_columns_from_insert
    with connection.cursor() as cursor:
        cursor.execute(
            head + row + (returning if can_return else ""),
            _stamped_params([instance], fields, connection),
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
    head, fields, row, returning = _insert_plan(type(instances[0]), alias)
    size = max(1, connection.ops.bulk_batch_size(fields, instances))
    with connection.cursor() as cursor:
        for start in range(0, len(instances), size):
            chunk = instances[start : start + size]
            params = _stamped_params(chunk, fields, connection)
            cursor.execute(head + ", ".join([row] * len(chunk)) + returning, params)
            # Rows come back in insertion order on every backend Django trusts with this.
            for instance, (pk,) in zip(chunk, cursor.fetchall(), strict=True):
                instance.pk = pk
                instance._state.adding = False
                instance._state.db = alias


@cache
def _lookup_sql(model: type[Model], alias: str, column: str, count: int) -> str:
    quote = connections[alias].ops.quote_name
    placeholders = ", ".join(["%s"] * count)
    table = quote(model._meta.db_table)
    return f"SELECT {quote(column)} FROM {table} WHERE {quote(column)} IN ({placeholders})"


def existing_values(model: type[Model], alias: str, column: str, values: Iterable) -> set:
    """Which of `values` appear in `column` of `model`'s table on `alias` (indexed lookups)."""
    wanted = list(dict.fromkeys(values))
    found = set()
    with _connection(alias).cursor() as cursor:
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            cursor.execute(_lookup_sql(model, alias, column, len(chunk)), chunk)
            found.update(value for (value,) in cursor.fetchall())
    return found


def count_existing(model: type[Model], alias: str, column: str, values: Iterable) -> int:
    """How many of `values` (distinct) appear in `column`: counted in chunks, held nowhere."""
    quote = connections[alias].ops.quote_name
    table = quote(model._meta.db_table)
    total = 0
    chunk: list = []
    with _connection(alias).cursor() as cursor:
        for value in values:
            chunk.append(value)
            if len(chunk) == LOOKUP_CHUNK:
                total += _count_chunk(cursor, table, quote(column), chunk)
                chunk = []
        if chunk:
            total += _count_chunk(cursor, table, quote(column), chunk)
    return total


def _count_chunk(cursor, table: str, column: str, chunk: list) -> int:
    placeholders = ", ".join(["%s"] * len(chunk))
    cursor.execute(f"SELECT count(*) FROM {table} WHERE {column} IN ({placeholders})", chunk)
    return cursor.fetchone()[0]
