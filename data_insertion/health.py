"""The health of every database (shards included) and of the shared cache, as `manage.py
health`, GET /api/health and the dashboard's health panel show it.

Read-only and bounded: a SQLite file that does not exist is reported, never created; a server
is asked `SELECT 1` (its latency), its tables' row counts and its size, with the connect
timeout its settings give (a refused port fails at once). Nothing here holds a lock.
"""

import contextlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis
from django.conf import settings
from django.db import DatabaseError, connections

from . import reference_cache
from .topology import backend, shardmap
from .topology.breakers import breaker
from .topology.placement import DEFAULT_DATABASE
from .topology.shared_cache import SHARED_CACHE, SOCKET_TIMEOUT_SECONDS, cache_location

SQLITE_COMPANIONS = ("", "-wal", "-shm")


@dataclass(frozen=True)
class DatabaseHealth:
    alias: str
    engine: str
    location: str  # a file, or host:port/name; never a password
    reachable: bool
    error: str | None = None
    latency_ms: float | None = None  # SELECT 1, connecting included
    tables: dict[str, int] = field(default_factory=dict)  # rows per table
    size_bytes: int | None = None
    breaker: str = "closed"  # this process's circuit breaker for the database


@dataclass(frozen=True)
class CacheHealth:
    configured: bool
    location: str | None = None  # host:port/db; never a password
    reachable: bool = False
    error: str | None = None
    latency_ms: float | None = None  # PING
    # Redis's own keyspace hits and misses since the server started (every client's)
    hits: int | None = None
    misses: int | None = None
    breaker: str | None = None  # this process's cache breaker

    @property
    def hit_ratio(self) -> float | None:
        if self.hits is None or self.misses is None or not self.hits + self.misses:
            return None
        return self.hits / (self.hits + self.misses)


@dataclass(frozen=True)
class HealthReport:
    databases: list[DatabaseHealth]
    cache: CacheHealth

    @property
    def healthy(self) -> bool:
        """Every database reachable, and the cache too when there is one."""
        databases_up = all(database.reachable for database in self.databases)
        return databases_up and (self.cache.reachable or not self.cache.configured)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["cache"]["hit_ratio"] = self.cache.hit_ratio
        data["healthy"] = self.healthy
        return data


def check_health() -> HealthReport:
    """Every database the settings and the shard maps name, then the cache."""
    default = database_health(DEFAULT_DATABASE)
    if default.reachable:  # a map may name databases the settings do not
        with contextlib.suppress(DatabaseError):
            shardmap.load_shard_maps(create=False)
    others = [database_health(alias) for alias in connections if alias != DEFAULT_DATABASE]
    return HealthReport(databases=[default, *others], cache=cache_health())


def database_health(alias: str) -> DatabaseHealth:
    connection = connections[alias]
    described = {
        "alias": alias,
        "engine": connection.vendor,
        "location": backend(alias).location,
        "breaker": breaker(alias).state,
    }
    if connection.vendor == "sqlite" and not Path(described["location"]).is_file():
        return DatabaseHealth(
            **described,
            reachable=False,
            error="no such file: run python manage.py insert_data (or migrate) to create it",
        )
    try:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
            latency = time.perf_counter() - started
            tables = _row_counts(connection, cursor)
            size = _size(connection, cursor, described["location"])
    except (DatabaseError, OSError) as error:
        return DatabaseHealth(**described, reachable=False, error=_one_line(error))
    finally:
        connection.close()
    return DatabaseHealth(
        **described,
        reachable=True,
        latency_ms=round(latency * 1000, 3),
        tables=tables,
        size_bytes=size,
    )


def _row_counts(connection, cursor) -> dict[str, int]:
    counts = {}
    for table in sorted(connection.introspection.table_names(cursor)):
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
        counts[table] = cursor.fetchone()[0]
    return counts


def _size(connection, cursor, location: str) -> int | None:
    """Bytes on disk: the SQLite file and its WAL; the server's database."""
    if connection.vendor == "sqlite":
        files = (Path(location + suffix) for suffix in SQLITE_COMPANIONS)
        return sum(path.stat().st_size for path in files if path.is_file())
    if connection.vendor == "postgresql":
        cursor.execute("SELECT pg_database_size(current_database())")
    elif connection.vendor == "mysql":
        cursor.execute(
            "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
            "WHERE table_schema = DATABASE()"
        )
    else:
        return None
    return int(cursor.fetchone()[0])


def cache_health() -> CacheHealth:
    """The shared cache: PING's latency and Redis's hit and miss counts (INFO stats)."""
    if SHARED_CACHE not in settings.CACHES:
        return CacheHealth(configured=False)
    url = settings.CACHES[SHARED_CACHE]["LOCATION"]
    shared = reference_cache.shared_cache()
    described = {
        "configured": True,
        "location": cache_location(url),
        "breaker": shared.breaker.state if shared else None,
    }
    client = redis.Redis.from_url(
        url, socket_connect_timeout=SOCKET_TIMEOUT_SECONDS, socket_timeout=SOCKET_TIMEOUT_SECONDS
    )
    try:
        started = time.perf_counter()
        client.ping()
        latency = time.perf_counter() - started
        stats = client.info("stats")
    except (redis.RedisError, OSError) as error:
        return CacheHealth(**described, reachable=False, error=_one_line(error))
    finally:
        client.close()
    return CacheHealth(
        **described,
        reachable=True,
        latency_ms=round(latency * 1000, 3),
        hits=stats.get("keyspace_hits"),
        misses=stats.get("keyspace_misses"),
    )


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__


def report_lines(report: HealthReport) -> list[str]:
    """The health as a table, a line of rows per table under each database, then the cache."""
    width = max(len(database.alias) for database in report.databases)
    lines = [
        f"{'Database':<{width}}  {'Engine':<10} {'Reachable':<9} {'SELECT 1 ms':>11} "
        f"{'Size':>10}  {'Breaker':<9} Location"
    ]
    for database in report.databases:
        latency = "-" if database.latency_ms is None else f"{database.latency_ms:.2f}"
        lines.append(
            f"{database.alias:<{width}}  {database.engine:<10} "
            f"{'yes' if database.reachable else 'NO':<9} {latency:>11} "
            f"{_size_text(database.size_bytes):>10}  {database.breaker:<9} {database.location}"
        )
        if database.error:
            lines.append(f"{'':<{width}}  error: {database.error}")
        if database.tables:
            rows = ", ".join(f"{table} {count:,}" for table, count in database.tables.items())
            lines.append(f"{'':<{width}}  rows: {rows}")
    cache = report.cache
    if not cache.configured:
        lines.append("Cache: none (DS_CACHE_URL is unset)")
    elif not cache.reachable:
        lines.append(f"Cache: {cache.location} UNREACHABLE: {cache.error}")
    else:
        ratio = "-" if cache.hit_ratio is None else f"{cache.hit_ratio:.1%}"
        lines.append(
            f"Cache: {cache.location} reachable, PING {cache.latency_ms:.2f} ms, hit ratio "
            f"{ratio} ({cache.hits:,} hits, {cache.misses:,} misses since Redis started), "
            f"breaker {cache.breaker}"
        )
    return lines


def _size_text(size: int | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def problems(report: HealthReport) -> list[str]:
    """What is unhealthy, one phrase each; empty when all is well."""
    found = [
        f"{database.alias} unreachable" for database in report.databases if not database.reachable
    ]
    if report.cache.configured and not report.cache.reachable:
        found.append("the cache unreachable")
    return found
