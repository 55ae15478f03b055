"""The benchmark: the same workload through the engine and through raw sqlite3, in one process.

Every mode runs on fresh temporary SQLite databases with the project's settings (WAL,
synchronous=NORMAL, busy timeout) and the same generated records (no invalid ones, so every
mode commits the same rows):

  (a) the engine, one transaction per record (insert_data's default);
  (b) the engine in group-commit mode (--batch-size);
  (c) raw sqlite3 with the same semantics: one BEGIN IMMEDIATE per record, the same email
      uniqueness check and the same cross-database existence checks, from the same threads;
  (d) raw executemany, one transaction per table: the ceiling for these rows on this machine.

Rates are rows committed (counted in the databases afterwards) per second of wall time.
"""

import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import connections

from distributed_system.routers import MODEL_DATABASES

from .datasets import Dataset
from .models import Order, Product, User, normalize_email
from .simulation import SimulationConfig, count_rows, migrate_databases, run_simulation

BENCHMARK_TAG = "bench"
RSS_SAMPLE_SECONDS = 0.02


@dataclass(frozen=True)
class ModeResult:
    name: str
    rows: int
    seconds: float
    peak_rss_mb: float
    failed: int = 0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass
class BenchmarkReport:
    threads: int
    records: int
    batch_size: int
    modes: dict[str, ModeResult] = field(default_factory=dict)
    scaling: list[ModeResult] = field(default_factory=list)

    def ratio(self, numerator: str, denominator: str) -> float:
        below = self.modes[denominator].rows_per_second
        return self.modes[numerator].rows_per_second / below if below else 0.0


def run_benchmark(
    *,
    threads: int,
    records: int,
    batch_size: int,
    seed: int = 1,
    scaling_threads: tuple[int, ...] = (),
    scaling_records: tuple[int, ...] = (),
    on_result: Callable[[ModeResult], None] | None = None,
) -> BenchmarkReport:
    report = BenchmarkReport(threads=threads, records=records, batch_size=batch_size)
    dataset = Dataset(records=records, tag=BENCHMARK_TAG, seed=seed, invalid_ratio=0.0)
    modes = {
        "a": ("engine, one transaction per record", lambda: _engine(threads, records, seed, None)),
        "b": (
            f"engine, group commit (batch {batch_size})",
            lambda: _engine(threads, records, seed, batch_size),
        ),
        "c": ("raw sqlite3, one transaction per record", lambda: _raw_per_record(dataset, threads)),
        "d": ("raw sqlite3 executemany, one transaction", lambda: _raw_executemany(dataset)),
    }
    for key, (name, run) in modes.items():
        report.modes[key] = _measure(name, run)
        if on_result:
            on_result(report.modes[key])
    for thread_count in scaling_threads:
        for record_count in scaling_records:
            name = f"{thread_count} threads x {record_count:,} records"
            result = _measure(
                name, lambda t=thread_count, r=record_count: _engine(t, r, seed, batch_size)
            )
            report.scaling.append(result)
            if on_result:
                on_result(result)
    return report


def _measure(name: str, run: Callable[[], tuple[int, int]]) -> ModeResult:
    with temporary_databases(), _peak_rss() as peak:
        started = time.perf_counter()
        failed = run()
        seconds = time.perf_counter() - started
        rows = sum(count_rows().values())
    return ModeResult(name, rows, seconds, peak_rss_mb=peak[0] / 2**20, failed=failed)


def _engine(threads: int, records: int, seed: int, batch_size: int | None) -> int:
    summary = run_simulation(
        SimulationConfig(
            threads=threads, records=records, seed=seed, invalid_ratio=0.0, batch_size=batch_size
        )
    )
    return summary.failed


@contextmanager
def temporary_databases() -> Iterator[Path]:
    """Point the three SQLite aliases at new files in a temporary directory, migrated."""
    directory = Path(tempfile.mkdtemp(prefix="distributed-system-benchmark-"))
    saved = {}
    for alias in MODEL_DATABASES.values():
        if connections[alias].vendor != "sqlite":
            raise RuntimeError(f"the benchmark runs on SQLite; {alias} is not SQLite")
        connections[alias].close()
        saved[alias] = connections.settings[alias]["NAME"]
        connections.settings[alias]["NAME"] = directory / f"{alias}.sqlite3"
    try:
        migrate_databases()
        yield directory
    finally:
        for alias, name in saved.items():
            connections[alias].close()
            connections.settings[alias]["NAME"] = name
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def _peak_rss() -> Iterator[list[int]]:
    """The highest resident set size seen while the block runs, in bytes (Linux /proc)."""
    peak = [_rss_bytes()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(RSS_SAMPLE_SECONDS):
            peak[0] = max(peak[0], _rss_bytes())

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], _rss_bytes())


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


# -- raw sqlite3 baselines ------------------------------------------------------------------


def _raw_connection(alias: str) -> sqlite3.Connection:
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


def _insert_sql(model) -> str:
    fields = [f.column for f in model._meta.concrete_fields if not f.primary_key]
    return (
        f'INSERT INTO "{model._meta.db_table}" ({", ".join(fields)}) '
        f"VALUES ({', '.join('?' * len(fields))})"
    )


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(" ")


def _user_row(values: dict) -> tuple:
    return (values["name"], values["email"], normalize_email(values["email"]), _now())


def _product_row(values: dict) -> tuple:
    return (values["name"], values["price"], _now())


def _order_row(values: dict) -> tuple:
    return (values["user_id"], values["product_id"], values["quantity"], _now())


def _raw_per_record(dataset: Dataset, threads: int) -> int:
    """One BEGIN IMMEDIATE per record from `threads` threads per model, checks included."""
    users, products, orders = (MODEL_DATABASES[m] for m in ("user", "product", "order"))
    user_sql, product_sql, order_sql = _insert_sql(User), _insert_sql(Product), _insert_sql(Order)
    email_taken = f'SELECT 1 FROM "{User._meta.db_table}" WHERE email_normalized = ? LIMIT 1'
    user_exists = f'SELECT 1 FROM "{User._meta.db_table}" WHERE id = ? LIMIT 1'
    product_exists = f'SELECT 1 FROM "{Product._meta.db_table}" WHERE id = ? LIMIT 1'

    def insert_users(indexes: range) -> None:
        connection = _raw_connection(users)
        for index in indexes:
            row = _user_row(dataset.user(index))
            connection.execute("BEGIN IMMEDIATE")
            if connection.execute(email_taken, (row[2],)).fetchone() is None:
                connection.execute(user_sql, row)
            connection.execute("COMMIT")
        connection.close()

    def insert_products(indexes: range) -> None:
        connection = _raw_connection(products)
        for index in indexes:
            row = _product_row(dataset.product(index))
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(product_sql, row)
            connection.execute("COMMIT")
        connection.close()

    _run_threads({"user": insert_users, "product": insert_products}, threads, dataset.records)
    user_ids, product_ids = _committed_ids(users, User), _committed_ids(products, Product)

    def insert_orders(indexes: range) -> None:
        connection = _raw_connection(orders)
        user_reader, product_reader = _raw_connection(users), _raw_connection(products)
        for index in indexes:
            values = dataset.order(index, user_ids, product_ids, 0, 0)
            connection.execute("BEGIN IMMEDIATE")
            if (
                user_reader.execute(user_exists, (values["user_id"],)).fetchone()
                and product_reader.execute(product_exists, (values["product_id"],)).fetchone()
            ):
                connection.execute(order_sql, _order_row(values))
            connection.execute("COMMIT")
        for each in (connection, user_reader, product_reader):
            each.close()

    _run_threads({"order": insert_orders}, threads, dataset.records)
    return 0


def _raw_executemany(dataset: Dataset) -> int:
    """Every row of a table in one executemany and one transaction: no checks, no threads."""
    for model, alias, rows in (
        (
            User,
            MODEL_DATABASES["user"],
            (_user_row(dataset.user(i)) for i in range(dataset.records)),
        ),
        (
            Product,
            MODEL_DATABASES["product"],
            (_product_row(dataset.product(i)) for i in range(dataset.records)),
        ),
    ):
        _executemany(alias, _insert_sql(model), rows)
    user_ids = _committed_ids(MODEL_DATABASES["user"], User)
    product_ids = _committed_ids(MODEL_DATABASES["product"], Product)
    orders = (
        _order_row(dataset.order(i, user_ids, product_ids, 0, 0)) for i in range(dataset.records)
    )
    _executemany(MODEL_DATABASES["order"], _insert_sql(Order), orders)
    return 0


def _executemany(alias: str, sql: str, rows: Iterator[tuple]) -> None:
    connection = _raw_connection(alias)
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(sql, rows)
    connection.execute("COMMIT")
    connection.close()


def _committed_ids(alias: str, model) -> list[int]:
    connection = _raw_connection(alias)
    ids = [
        pk for (pk,) in connection.execute(f'SELECT id FROM "{model._meta.db_table}" ORDER BY id')
    ]
    connection.close()
    return ids


def _run_threads(bodies: dict[str, Callable[[range], None]], threads: int, records: int) -> None:
    barrier = threading.Barrier(threads * len(bodies))

    def run(body: Callable[[range], None], indexes: range) -> None:
        barrier.wait()
        body(indexes)

    workers = [
        threading.Thread(target=run, args=(body, range(number, records, threads)))
        for body in bodies.values()
        for number in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
