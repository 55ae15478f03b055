"""The benchmark's raw baselines: the same rows through the database driver alone, no Django.

For each engine two baselines, on the databases the benchmark points the aliases at:

  per record: one transaction per record from `threads` threads per model, with the engine's
      checks: email uniqueness under the same serialisation (SQLite's write lock, PostgreSQL's
      advisory lock on the same key) and the existence checks of an order's user and product
      on their databases;
  bulk: every row of a table in one transaction with no checks, no threads (sqlite3's
      executemany, PostgreSQL's COPY): the ceiling for these rows on this machine.

Each returns the number of records that failed (always 0: an error stops the benchmark).
"""

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connections

from ..datasets import Dataset
from ..engine import run_workers
from ..engine.workers import split
from ..models import Order, Product, User, normalize_email
from ..topology import MODEL_DATABASES
from ..topology.backends import advisory_lock_number
from ..topology.connections import connection_permits

USERS, PRODUCTS, ORDERS = (MODEL_DATABASES[model] for model in ("user", "product", "order"))


def names(vendor: str) -> tuple[str, str]:
    """How the benchmark names the two baselines for `vendor`."""
    if vendor == "postgresql":
        return "raw psycopg, one transaction per record", "raw psycopg COPY, one transaction"
    return "raw sqlite3, one transaction per record", "raw sqlite3 executemany, one transaction"


def per_record(vendor: str, dataset: Dataset, threads: int) -> int:
    if vendor == "postgresql":
        return _postgresql_per_record(dataset, threads)
    return _sqlite_per_record(dataset, threads)


def bulk(vendor: str, dataset: Dataset) -> int:
    if vendor == "postgresql":
        return _postgresql_copy(dataset)
    return _sqlite_executemany(dataset)


def _columns(model) -> list[str]:
    # record_key is left to its default, NULL, as a run in one process leaves it (its index
    # is kept up all the same).
    return [
        f.column
        for f in model._meta.concrete_fields
        if not f.primary_key and f.name != "record_key"
    ]


def _user_row(values: dict, now) -> tuple:
    return (values["name"], values["email"], normalize_email(values["email"]), now)


def _product_row(values: dict, now) -> tuple:
    return (values["name"], values["price"], now)


def _order_row(values: dict, now) -> tuple:
    return (values["user_id"], values["product_id"], values["quantity"], now)


@dataclass(frozen=True)
class _Statements:
    """The SQL both per-record baselines run, in the driver's parameter marker."""

    insert_user: str
    insert_product: str
    insert_order: str
    email_taken: str
    user_exists: str
    product_exists: str


def _insert_sql(model, marker: str) -> str:
    fields = _columns(model)
    return (
        f'INSERT INTO "{model._meta.db_table}" ({", ".join(fields)}) '
        f"VALUES ({', '.join([marker] * len(fields))})"
    )


def _statements(marker: str) -> _Statements:
    users, products = User._meta.db_table, Product._meta.db_table
    return _Statements(
        insert_user=_insert_sql(User, marker),
        insert_product=_insert_sql(Product, marker),
        insert_order=_insert_sql(Order, marker),
        email_taken=f'SELECT 1 FROM "{users}" WHERE email_normalized = {marker} LIMIT 1',
        user_exists=f'SELECT 1 FROM "{users}" WHERE id = {marker} LIMIT 1',
        product_exists=f'SELECT 1 FROM "{products}" WHERE id = {marker} LIMIT 1',
    )


def _run_threads(bodies: dict[str, Callable[[range], None]], threads: int, records: int) -> None:
    """Each body from `threads` threads, on every `threads`-th record: the engine's runner."""
    run_workers(
        {
            f"{name}-baseline-{number + 1:03d}": (lambda body=body, indexes=indexes: body(indexes))
            for name, body in bodies.items()
            for number, indexes in enumerate(split(range(records), threads))
        }
    )


# -- sqlite3 ----------------------------------------------------------------------------------


def _sqlite_connection(alias: str) -> sqlite3.Connection:
    options = settings.DATABASES[alias]["OPTIONS"]
    connection = sqlite3.connect(
        connections.settings[alias]["NAME"],
        timeout=options["timeout"],
        isolation_level=None,
        check_same_thread=False,
    )
    for pragma in options["init_command"].split(";"):
        connection.execute(pragma)
    return connection


def _sqlite_now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(" ")


def _sqlite_per_record(dataset: Dataset, threads: int) -> int:
    """One BEGIN IMMEDIATE per record from `threads` threads per model, checks included."""
    sql = _statements("?")

    def insert_users(indexes: range) -> None:
        connection = _sqlite_connection(USERS)
        for index in indexes:
            row = _user_row(dataset.user(index), _sqlite_now())
            connection.execute("BEGIN IMMEDIATE")
            if connection.execute(sql.email_taken, (row[2],)).fetchone() is None:
                connection.execute(sql.insert_user, row)
            connection.execute("COMMIT")
        connection.close()

    def insert_products(indexes: range) -> None:
        connection = _sqlite_connection(PRODUCTS)
        for index in indexes:
            row = _product_row(dataset.product(index), _sqlite_now())
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(sql.insert_product, row)
            connection.execute("COMMIT")
        connection.close()

    _run_threads({"user": insert_users, "product": insert_products}, threads, dataset.records)
    user_ids, product_ids = _sqlite_ids(USERS, User), _sqlite_ids(PRODUCTS, Product)

    def insert_orders(indexes: range) -> None:
        connection = _sqlite_connection(ORDERS)
        user_reader, product_reader = _sqlite_connection(USERS), _sqlite_connection(PRODUCTS)
        for index in indexes:
            values = dataset.order(index, user_ids, product_ids, 0, 0)
            connection.execute("BEGIN IMMEDIATE")
            if (
                user_reader.execute(sql.user_exists, (values["user_id"],)).fetchone()
                and product_reader.execute(sql.product_exists, (values["product_id"],)).fetchone()
            ):
                connection.execute(sql.insert_order, _order_row(values, _sqlite_now()))
            connection.execute("COMMIT")
        for each in (connection, user_reader, product_reader):
            each.close()

    _run_threads({"order": insert_orders}, threads, dataset.records)
    return 0


def _sqlite_executemany(dataset: Dataset) -> int:
    """Every row of a table in one executemany and one transaction: no checks, no threads."""
    records = range(dataset.records)
    for model, alias, rows in (
        (User, USERS, (_user_row(dataset.user(i), _sqlite_now()) for i in records)),
        (Product, PRODUCTS, (_product_row(dataset.product(i), _sqlite_now()) for i in records)),
    ):
        _sqlite_bulk(alias, _insert_sql(model, "?"), rows)
    user_ids, product_ids = _sqlite_ids(USERS, User), _sqlite_ids(PRODUCTS, Product)
    orders = (
        _order_row(dataset.order(i, user_ids, product_ids, 0, 0), _sqlite_now()) for i in records
    )
    _sqlite_bulk(ORDERS, _insert_sql(Order, "?"), orders)
    return 0


def _sqlite_bulk(alias: str, sql: str, rows: Iterator[tuple]) -> None:
    connection = _sqlite_connection(alias)
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(sql, rows)
    connection.execute("COMMIT")
    connection.close()


def _sqlite_ids(alias: str, model) -> list[int]:
    connection = _sqlite_connection(alias)
    ids = [
        pk for (pk,) in connection.execute(f'SELECT id FROM "{model._meta.db_table}" ORDER BY id')
    ]
    connection.close()
    return ids


# -- PostgreSQL (psycopg 3) -------------------------------------------------------------------


def _postgresql_pool(alias: str, size: int):
    """A psycopg pool of `size` autocommit connections to the database `alias` points at now."""
    from psycopg_pool import ConnectionPool

    database = connections.settings[alias]
    options = {k: v for k, v in database["OPTIONS"].items() if k not in {"pool", "assume_role"}}
    kwargs = {
        "dbname": database["NAME"],
        "user": database["USER"] or None,
        "password": database["PASSWORD"] or None,
        "host": database["HOST"] or None,
        "port": database["PORT"] or None,
        "autocommit": True,
        **options,
    }
    return ConnectionPool(
        kwargs={k: v for k, v in kwargs.items() if v is not None},
        min_size=1,
        max_size=size,
        open=True,
    )


def _postgresql_per_record(dataset: Dataset, threads: int) -> int:
    """One transaction per record from `threads` threads per model, checks and locks included.

    Connections come from pools as large as the engine's connection permits, one per database.
    """
    pools = {
        alias: _postgresql_pool(alias, connection_permits(alias))
        for alias in MODEL_DATABASES.values()
    }
    sql = _statements("%s")

    def insert_users(indexes: range) -> None:
        for index in indexes:
            row = _user_row(dataset.user(index), datetime.now(UTC))
            with pools[USERS].connection() as connection, connection.transaction():
                lock = advisory_lock_number(row[2])
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
                if connection.execute(sql.email_taken, (row[2],)).fetchone() is None:
                    connection.execute(sql.insert_user, row)

    def insert_products(indexes: range) -> None:
        for index in indexes:
            row = _product_row(dataset.product(index), datetime.now(UTC))
            with pools[PRODUCTS].connection() as connection, connection.transaction():
                connection.execute(sql.insert_product, row)

    try:
        _run_threads({"user": insert_users, "product": insert_products}, threads, dataset.records)
        user_ids = _postgresql_ids(pools[USERS], User)
        product_ids = _postgresql_ids(pools[PRODUCTS], Product)

        def insert_orders(indexes: range) -> None:
            for index in indexes:
                values = dataset.order(index, user_ids, product_ids, 0, 0)
                with pools[ORDERS].connection() as connection, connection.transaction():
                    with pools[USERS].connection() as users:
                        user_found = users.execute(sql.user_exists, (values["user_id"],)).fetchone()
                    with pools[PRODUCTS].connection() as products:
                        product_found = products.execute(
                            sql.product_exists, (values["product_id"],)
                        ).fetchone()
                    if user_found and product_found:
                        connection.execute(sql.insert_order, _order_row(values, datetime.now(UTC)))

        _run_threads({"order": insert_orders}, threads, dataset.records)
    finally:
        for pool in pools.values():
            pool.close()
    return 0


def _postgresql_copy(dataset: Dataset) -> int:
    """Every row of a table in one COPY and one transaction: no checks, no threads."""
    pools = {alias: _postgresql_pool(alias, 1) for alias in MODEL_DATABASES.values()}
    records = range(dataset.records)
    try:
        now = datetime.now(UTC)
        _copy(pools[USERS], User, (_user_row(dataset.user(i), now) for i in records))
        _copy(pools[PRODUCTS], Product, (_product_row(dataset.product(i), now) for i in records))
        user_ids = _postgresql_ids(pools[USERS], User)
        product_ids = _postgresql_ids(pools[PRODUCTS], Product)
        orders = (_order_row(dataset.order(i, user_ids, product_ids, 0, 0), now) for i in records)
        _copy(pools[ORDERS], Order, orders)
    finally:
        for pool in pools.values():
            pool.close()
    return 0


def _copy(pool, model, rows: Iterator[tuple]) -> None:
    sql = f'COPY "{model._meta.db_table}" ({", ".join(_columns(model))}) FROM STDIN'
    with (
        pool.connection() as connection,
        connection.transaction(),
        connection.cursor() as cursor,
        cursor.copy(sql) as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _postgresql_ids(pool, model) -> list[int]:
    with pool.connection() as connection:
        rows = connection.execute(f'SELECT id FROM "{model._meta.db_table}" ORDER BY id')
        return [pk for (pk,) in rows]
