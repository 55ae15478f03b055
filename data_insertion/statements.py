"""The two statements every insert runs, built once per model and database.

They issue the same SQL as `Model.save()` and `QuerySet.exists()` and prepare values through
each field exactly as those do, without rebuilding a query per call: the ORM's per-call
overhead was half of the time of an insert (see the README's performance section).
"""

from functools import cache

from django.db import connections
from django.db.models import Model


@cache
def _insert_sql(model: type[Model], alias: str) -> tuple[str, tuple, bool]:
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = model._meta
    fields = tuple(f for f in meta.concrete_fields if not f.primary_key)
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    returning = connection.features.can_return_columns_from_insert
    if returning:
        sql += f" RETURNING {quote(meta.pk.column)}"
    return sql, fields, returning


def insert_row(instance: Model, alias: str) -> None:
    """INSERT `instance` into `alias` and set its primary key."""
    model = type(instance)
    sql, fields, returning = _insert_sql(model, alias)
    connection = connections[alias]
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if returning:
            (instance.pk,) = cursor.fetchone()
        else:
            meta = model._meta
            instance.pk = connection.ops.last_insert_id(cursor, meta.db_table, meta.pk.column)
    instance._state.adding = False
    instance._state.db = alias


@cache
def _exists_sql(model: type[Model], column: str, alias: str) -> str:
    quote = connections[alias].ops.quote_name
    return f"SELECT 1 FROM {quote(model._meta.db_table)} WHERE {quote(column)} = %s LIMIT 1"


def row_exists(model: type[Model], alias: str, column: str, value: object) -> bool:
    """Whether `alias` holds a `model` row whose `column` equals `value` (an indexed lookup)."""
    with connections[alias].cursor() as cursor:
        cursor.execute(_exists_sql(model, column, alias), [value])
        return cursor.fetchone() is not None
