"""The benchmark: the same workload through the engine and through the raw driver, in one process.

The three databases are all SQLite (the default) or all PostgreSQL. Every mode runs on fresh
temporary databases (files in a temporary directory, or databases created on the server and
dropped afterwards) with the project's settings and the same generated records (no invalid
ones, so every mode commits the same rows):

  (a) the engine, one transaction per record (insert_data's default);
  (b) the engine in group-commit mode (--batch-size);
  (c) the raw driver (sqlite3, psycopg) with the same semantics: one transaction per record,
      the same email uniqueness check under the same lock and the same cross-database
      existence checks, from the same threads (see baselines.py);
  (d) the raw driver's bulk path (executemany, COPY), one transaction per table: the ceiling
      for these rows on this machine.

Rates are rows committed (counted in the databases afterwards) per second of wall time.

The cache line (with DS_CACHE_URL, or --cache alone) runs the engine's two modes without the
shared cache and through it, and gives the orders' rate: the orders are the records whose
checks the cache answers.

The shard axis (--shards) runs the engine's two modes with every model over 1, 2, 4, ...
SQLite files, the shard maps in a temporary default database (a map, once written, is obeyed:
it must never land in the user's).
"""

import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connections

from .. import reference_cache
from ..datasets import Dataset
from ..engine import SimulationConfig, run_simulation
from ..engine.faults import Fault
from ..housekeeping import count_rows, migrate_databases
from ..reference_cache import ReferenceCache
from ..summary import RunSummary
from ..topology import MODEL_DATABASES, shardmap
from ..topology.databases import sqlite_database
from ..topology.placement import DEFAULT_DATABASE
from ..topology.shards import shard_alias
from ..topology.shared_cache import SHARED_CACHE
from . import baselines

BENCHMARK_TAG = "bench"
RSS_SAMPLE_SECONDS = 0.02
SUPPORTED_VENDORS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class ModeResult:
    name: str
    rows: int
    seconds: float
    peak_rss_mb: float | None  # None: not measured (whole processes forked from this one)
    failed: int = 0
    # CPU time (user + system) of the measured work: of this process for an in-process mode,
    # of the whole process and its children for a whole insert_data process.
    cpu_seconds: float | None = None

    @property
    def cores(self) -> float | None:
        """Cores kept busy on average: CPU time over wall time."""
        if self.cpu_seconds is None or not self.seconds:
            return None
        return self.cpu_seconds / self.seconds

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass
class BenchmarkReport:
    threads: int
    records: int
    batch_size: int
    vendor: str
    modes: dict[str, ModeResult] = field(default_factory=dict)

    def ratio(self, numerator: str, denominator: str) -> float:
        below = self.modes[denominator].rows_per_second
        return self.modes[numerator].rows_per_second / below if below else 0.0


def compare_modes(
    *,
    threads: int,
    records: int,
    batch_size: int,
    seed: int = 1,
    faults: tuple[Fault, ...] = (),
    on_result: Callable[[ModeResult], None] | None = None,
    only: tuple[str, ...] = ("a", "b", "c", "d"),
) -> BenchmarkReport:
    """Modes a-d (or the `only` ones) on the same workload, each on fresh temporary databases;
    `faults` are injected into the engine's modes (a, b), the raw baselines having no such
    hook."""
    vendor = databases_vendor()
    report = BenchmarkReport(threads=threads, records=records, batch_size=batch_size, vendor=vendor)
    dataset = Dataset(records=records, tag=BENCHMARK_TAG, seed=seed, invalid_ratio=0.0)
    per_record_name, bulk_name = baselines.names(vendor)
    modes = {
        "a": (
            "engine, one transaction per record",
            lambda: _engine(threads, records, seed, None, faults),
        ),
        "b": (
            f"engine, group commit (batch {batch_size})",
            lambda: _engine(threads, records, seed, batch_size, faults),
        ),
        "c": (per_record_name, lambda: baselines.per_record(vendor, dataset, threads)),
        "d": (bulk_name, lambda: baselines.bulk(vendor, dataset)),
    }
    for key, (name, run) in modes.items():
        if key not in only:
            continue
        report.modes[key] = _measure(name, run)
        if on_result:
            on_result(report.modes[key])
    return report


def measure_scaling(
    *,
    thread_counts: tuple[int, ...],
    record_counts: tuple[int, ...],
    batch_size: int | None,
    seed: int = 1,
    faults: tuple[Fault, ...] = (),
    on_result: Callable[[ModeResult], None] | None = None,
) -> list[ModeResult]:
    """The engine at each thread count x records per model, on fresh temporary databases."""
    results = []
    for thread_count in thread_counts:
        for record_count in record_counts:
            result = _measure(
                f"{thread_count:,} threads x {record_count:,} records",
                lambda t=thread_count, r=record_count: _engine(t, r, seed, batch_size, faults),
            )
            results.append(result)
            if on_result:
                on_result(result)
    return results


def measure_shards(
    *,
    shard_counts: tuple[int, ...],
    threads: int,
    records: int,
    batch_size: int,
    seed: int = 1,
    faults: tuple[Fault, ...] = (),
    on_result: Callable[[ModeResult], None] | None = None,
) -> list[ModeResult]:
    """The engine, one transaction per record and group commit, with every model over each
    number of databases in `shard_counts`, on fresh temporary SQLite files."""
    if databases_vendor() != "sqlite":
        raise UnsupportedDatabases("the --shards axis runs on SQLite files only")
    results = []
    for shards in shard_counts:
        for mode, batch in (("one transaction per record", None), ("group commit", batch_size)):
            result = _measure(
                f"{shards} per model, {mode}",
                lambda b=batch: _engine(threads, records, seed, b, faults),
                shards=shards,
            )
            results.append(result)
            if on_result:
                on_result(result)
    return results


def measure_cache(
    *,
    threads: int,
    records: int,
    batch_size: int,
    seed: int = 1,
    faults: tuple[Fault, ...] = (),
    on_result: Callable[[ModeResult], None] | None = None,
) -> list[ModeResult]:
    """Orders/s of the engine's two modes without the shared cache and through it (keys of
    its own, empty at the start: the hits are those of one run), on fresh temporary
    databases; each result's rows and seconds are the orders' and their wall time."""
    if SHARED_CACHE not in settings.CACHES:
        raise UnsupportedDatabases("the cache line needs a shared cache: set DS_CACHE_URL")
    results = []
    for mode, batch in (("one transaction per record", None), ("group commit", batch_size)):
        for cached in (False, True):
            cache = (
                ReferenceCache(key_prefix=f"ds-bench-{uuid.uuid4().hex[:12]}") if cached else None
            )
            with temporary_databases(), reference_cache.replaced(cache), _peak_rss() as peak:
                summary = run_simulation(
                    SimulationConfig(
                        threads=threads,
                        records=records,
                        seed=seed,
                        invalid_ratio=0.0,
                        batch_size=batch,
                        faults=faults,
                    )
                )
            orders = summary.models["order"]
            name = f"{mode}, " + (
                f"cache, {_hit_ratio(summary):.0%} hits" if cached else "no cache"
            )
            result = ModeResult(
                name, orders.inserted, orders.wall_seconds, peak[0] / 2**20, summary.failed
            )
            results.append(result)
            if on_result:
                on_result(result)
    return results


def _hit_ratio(summary: RunSummary) -> float:
    hits = sum(cache.hits for cache in summary.reference_cache)
    asked = hits + sum(cache.misses for cache in summary.reference_cache)
    return hits / asked if asked else 0.0


def _measure(name: str, run: Callable[[], int], shards: int | None = None) -> ModeResult:
    with temporary_databases(shards), _peak_rss() as peak:
        started, cpu = time.perf_counter(), time.process_time()
        failed = run()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        rows = sum(count_rows().values())
    return ModeResult(
        name, rows, seconds, peak_rss_mb=peak[0] / 2**20, failed=failed, cpu_seconds=cpu
    )


def _engine(
    threads: int, records: int, seed: int, batch_size: int | None, faults: tuple[Fault, ...]
) -> int:
    summary = run_simulation(
        SimulationConfig(
            threads=threads,
            records=records,
            seed=seed,
            invalid_ratio=0.0,
            batch_size=batch_size,
            faults=faults,
        )
    )
    return summary.failed


class UnsupportedDatabases(Exception):
    """The databases are on an engine, or a mix of engines, the benchmark cannot compare."""


def databases_vendor() -> str:
    """The engine of the model databases (a sharded model's too): all SQLite or all
    PostgreSQL."""
    vendors = {connections[alias].vendor for alias in connections if alias != DEFAULT_DATABASE}
    if len(vendors) != 1 or not vendors <= set(SUPPORTED_VENDORS):
        raise UnsupportedDatabases(
            "the benchmark runs with the model databases all on SQLite or all on PostgreSQL; "
            f"they are on {', '.join(sorted(vendors))}"
        )
    return vendors.pop()


@contextmanager
def temporary_databases(shards: int | None = None) -> Iterator[None]:
    """Point the aliases at new, migrated databases, and remove those afterwards; with
    `shards`, every model over that many SQLite files. No shared cache meanwhile: its
    entries are the deployment's (measure_cache brings one of its own)."""
    with reference_cache.replaced(None):
        if shards is not None:
            with _temporary_sqlite_databases(shards):
                yield
        elif databases_vendor() == "postgresql":
            with _temporary_server_databases():
                yield
        else:
            with _temporary_sqlite_databases(None):
                yield


@contextmanager
def _temporary_sqlite_databases(shards: int | None) -> Iterator[Path]:
    """Point the model aliases (and, for `shards`, default and each model's `shards` aliases)
    at new files in a temporary directory, migrated."""
    directory = Path(tempfile.mkdtemp(prefix="distributed-system-benchmark-"))
    repointed = list(MODEL_DATABASES.values()) if shards is None else list(connections)
    saved = {}
    for alias in repointed:
        connections[alias].close()
        saved[alias] = connections.settings[alias]["NAME"]
        connections.settings[alias]["NAME"] = directory / f"{alias}.sqlite3"
    added = [] if shards is None else _add_shard_aliases(shards, directory)
    saved_counts = dict(settings.SHARD_COUNTS)
    if shards is not None:
        settings.SHARD_COUNTS.update(dict.fromkeys(saved_counts, shards))
        shardmap.forget_shard_maps()
    try:
        migrate_databases()
        yield directory
    finally:
        for alias in added:
            shardmap.remove_database(alias)
        for alias, name in saved.items():
            connections[alias].close()
            connections.settings[alias]["NAME"] = name
        if shards is not None:
            settings.SHARD_COUNTS.update(saved_counts)
            shardmap.forget_shard_maps()
        shutil.rmtree(directory, ignore_errors=True)


def _add_shard_aliases(shards: int, directory: Path) -> list[str]:
    """The aliases of every model over `shards` databases the settings lack, added as files
    in `directory`."""
    wanted = [
        alias if shards == 1 else shard_alias(alias, index)
        for alias in MODEL_DATABASES.values()
        for index in range(shards)
    ]
    added = [alias for alias in wanted if alias not in connections.settings]
    for alias in added:
        shardmap.add_database(
            alias, sqlite_database(directory / f"{alias}.sqlite3", settings.SQLITE_TIMEOUT_SECONDS)
        )
    return added


@contextmanager
def _temporary_server_databases() -> Iterator[None]:
    """Create a database per alias on its server (ds_bench_<random>_<alias>), migrate, drop."""
    suffix = uuid.uuid4().hex[:8]
    saved = {}
    try:
        for alias in MODEL_DATABASES.values():
            name = f"ds_bench_{suffix}_{alias}"
            _release_connections(alias)
            _execute_without_database(alias, f"CREATE DATABASE {_quote(alias, name)}")
            saved[alias] = connections.settings[alias]["NAME"]
            connections.settings[alias]["NAME"] = name
        migrate_databases()
        yield
    finally:
        for alias, name in saved.items():
            _release_connections(alias)
            temporary = connections.settings[alias]["NAME"]
            connections.settings[alias]["NAME"] = name
            _execute_without_database(
                alias, f"DROP DATABASE IF EXISTS {_quote(alias, temporary)} WITH (FORCE)"
            )


def _release_connections(alias: str) -> None:
    """Close this thread's connection and the pool, whose connections name the old database."""
    connection = connections[alias]
    connection.close()
    if getattr(connection, "pool", None) is not None:
        connection.close_pool()


def _execute_without_database(alias: str, sql: str) -> None:
    with connections[alias]._nodb_cursor() as cursor:
        cursor.execute(sql)


def _quote(alias: str, name: str) -> str:
    return connections[alias].ops.quote_name(name)


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
