"""Online rebalancing: move logical shards between a model's databases while writers go on.

Vitess's way, per chunk of logical shards going from one database to another:

1. copy the chunk's rows to the new database (writers still write to the old one);
2. freeze the chunk in the map (version + 1): a writer that confirms the map now rolls back
   and waits for the switch (topology.shardmap);
3. take the chunk's write locks on the old database and let go: every writer that confirmed
   the old map has committed;
4. copy what they wrote meanwhile, and verify each logical shard on both sides: row count
   and a checksum of every row (VDiff);
5. switch the chunk to the new database (version + 1): writers retry there;
6. delete the chunk from the old database.

Every step is kept in the map (the target assignment, the frozen chunk), so a rebalance killed
at any point is finished by running it again: it first deletes rows stored where the map does
not put them (a half-done copy, or the old copy of a switched chunk), unfreezes what a killed
run froze (the old database still holds all of it), and carries on.
"""

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connections, transaction

from .housekeeping import migrate_databases, model_class
from .topology import backend, shardmap
from .topology.placement import DEFAULT_DATABASE, MODEL_DATABASES
from .topology.shards import (
    DIGITS,
    LOGICAL_SHARDS,
    database_index,
    id_ranges,
    rebalanced_assignment,
    shard_alias,
)

# Logical shards moved per cut-over: small enough that the writes held in a cut-over wait
# only for a few milliseconds of copying, large enough that a rebalance takes few of them.
CHUNK_SHARDS = 128
COPY_PAGE = 2000


class RebalanceError(Exception):
    """The rebalance cannot run or cannot go on: one line saying why."""


@dataclass(frozen=True)
class RebalanceReport:
    model: str
    databases_before: int
    databases_after: int
    shards_moved: int
    rows_moved: int
    seconds: float
    longest_cut_over: float  # the longest time a write to a moving logical shard could wait
    cut_over_total: float

    def line(self) -> str:
        return (
            f"{self.model}s: {self.databases_before} -> {self.databases_after} databases, "
            f"{self.shards_moved:,} logical shards and {self.rows_moved:,} rows moved in "
            f"{self.seconds:.2f} s; writes to a moving shard waited at most "
            f"{self.longest_cut_over * 1000:.0f} ms ({self.cut_over_total * 1000:.0f} ms of "
            "cut-overs in all)"
        )


def rebalance(model: str, databases: int, progress: Callable[[str], None]) -> RebalanceReport:
    """Move `model`'s logical shards until `databases` databases hold an equal share."""
    started = time.perf_counter()
    migrate_databases()
    layout = shardmap.reload(model, create=False)
    if layout is None:
        raise RebalanceError(
            f"{model}s are in one database, with ids that carry no logical shard: start them "
            "sharded (DS_SHARDS=2 or more) to rebalance them later"
        )
    before = layout.databases
    if layout.target and _databases_in(layout.target) != databases:
        raise RebalanceError(
            f"a rebalance of {model}s to {_databases_in(layout.target)} databases is under "
            f"way: run rebalance --shards {_databases_in(layout.target)} to finish it first"
        )
    if not layout.target:
        target = rebalanced_assignment(layout.assignment, databases)
        _update_map(model, target=target, database_count=max(before, databases))
    migrate_databases()  # the new databases, now that the map names them
    layout = shardmap.reload(model, create=False)
    _delete_misplaced(model, layout, progress)
    if layout.frozen:
        _update_map(model, frozen="")
        layout = shardmap.reload(model, create=False)
    rows_moved = 0
    cut_overs: list[float] = []
    chunks = _chunks(layout)
    for number, (source, destination, shards) in enumerate(chunks, 1):
        rows, cut_over = _move(model, shards, source, destination)
        rows_moved += rows
        cut_overs.append(cut_over)
        progress(
            f"{model}s: chunk {number}/{len(chunks)}: {len(shards)} logical shards, {rows:,} "
            f"rows {source} -> {destination} (cut-over {cut_over * 1000:.0f} ms)"
        )
    final = shardmap.reload(model, create=False)
    _update_map(model, assignment=final.target, target="", frozen="", database_count=databases)
    shardmap.reload(model, create=False)
    return RebalanceReport(
        model=model,
        databases_before=before,
        databases_after=databases,
        shards_moved=sum(len(shards) for _, _, shards in chunks),
        rows_moved=rows_moved,
        seconds=time.perf_counter() - started,
        longest_cut_over=max(cut_overs, default=0.0),
        cut_over_total=sum(cut_overs),
    )


def _databases_in(assignment: str) -> int:
    return 1 + max(database_index(digit) for digit in set(assignment))


def _chunks(layout: shardmap.ShardLayout) -> list[tuple[str, str, list[int]]]:
    """The logical shards still to move, as (old alias, new alias, up to CHUNK_SHARDS)."""
    base = MODEL_DATABASES[layout.model]
    moves: dict[tuple[str, str], list[int]] = {}
    for shard in range(LOGICAL_SHARDS):
        old, new = layout.assignment[shard], layout.target[shard]
        if old != new:
            key = (shard_alias(base, database_index(old)), shard_alias(base, database_index(new)))
            moves.setdefault(key, []).append(shard)
    return [
        (source, destination, shards[start : start + CHUNK_SHARDS])
        for (source, destination), shards in moves.items()
        for start in range(0, len(shards), CHUNK_SHARDS)
    ]


def _move(model: str, shards: list[int], source: str, destination: str) -> tuple[int, float]:
    """Copy, freeze, drain, copy the rest, verify, switch, delete: rows moved, cut-over time."""
    table = _Table(model_class(model))
    table.delete(destination, shards)  # what a killed run left there
    table.copy(source, destination, shards)
    frozen_at = time.perf_counter()
    _update_map(model, frozen=",".join(map(str, shards)))
    lock_keys = sorted(shardmap.shard_lock_key(model, shard) for shard in shards)
    with backend(source).write_transaction(lock_keys):
        pass  # every writer that confirmed the old map has committed
    table.copy(source, destination, shards, only_missing=True)
    for shard in shards:
        if table.digest(source, [shard]) != table.digest(destination, [shard]):
            _update_map(model, frozen="")
            raise RebalanceError(
                f"logical shard {shard} differs between {source} and {destination} after the "
                "copy; the map was not switched"
            )
    layout = shardmap.reload(model, create=False)
    assignment = list(layout.assignment)
    for shard in shards:
        assignment[shard] = DIGITS[int(destination.rpartition("_")[2])]
    _update_map(model, assignment="".join(assignment), frozen="")
    cut_over = time.perf_counter() - frozen_at
    rows = table.delete(source, shards)
    return rows, cut_over


def _delete_misplaced(model: str, layout: shardmap.ShardLayout, progress) -> None:
    """Delete, from each database, the rows of logical shards the map puts elsewhere."""
    table = _Table(model_class(model))
    for alias in layout.aliases:
        elsewhere = [s for s in range(LOGICAL_SHARDS) if layout.alias_of_shard(s) != alias]
        deleted = table.delete(alias, elsewhere)
        if deleted:
            progress(f"{model}s: {deleted:,} rows left in {alias} by an unfinished run deleted")


def _update_map(model: str, **changes) -> None:
    """Change the model's map row and bump its version, in one transaction on default."""
    assignments = ", ".join(f"{column} = %s" for column in changes)
    with transaction.atomic(using=DEFAULT_DATABASE), connections[DEFAULT_DATABASE].cursor() as c:
        c.execute(
            f"UPDATE {shardmap.MAP_TABLE} SET {assignments}, version = version + 1 "
            "WHERE model = %s",
            [*changes.values(), model],
        )


class _Table:
    """One model's table, read and written by logical shard on any of its databases."""

    def __init__(self, model) -> None:
        self.model = model
        self.columns = [field.column for field in model._meta.concrete_fields]

    def _where(self, alias: str, shards: list[int]) -> tuple[str, list[int]]:
        ranges = id_ranges(shards)
        sql = " OR ".join(["id BETWEEN %s AND %s"] * len(ranges)) or "1 = 0"
        return f"({sql})", [bound for low, high in ranges for bound in (low, high - 1)]

    def _select(self, alias: str, shards: list[int], columns: list[str]) -> tuple[str, list]:
        quote = connections[alias].ops.quote_name
        where, params = self._where(alias, shards)
        names = ", ".join(quote(column) for column in columns)
        return (
            f"SELECT {names} FROM {quote(self.model._meta.db_table)} WHERE {where} ORDER BY id",
            params,
        )

    def copy(
        self, source: str, destination: str, shards: list[int], only_missing: bool = False
    ) -> int:
        """Copy the shards' rows from `source` (those `destination` lacks, if `only_missing`)."""
        present = set()
        if only_missing:
            sql, params = self._select(destination, shards, ["id"])
            with connections[destination].cursor() as cursor:
                cursor.execute(sql, params)
                present = {row_id for (row_id,) in cursor.fetchall()}
        sql, params = self._select(source, shards, self.columns)
        quote = connections[destination].ops.quote_name
        insert = (
            f"INSERT INTO {quote(self.model._meta.db_table)} "
            f"({', '.join(quote(column) for column in self.columns)}) "
            f"VALUES ({', '.join(['%s'] * len(self.columns))})"
        )
        copied = 0
        with connections[source].cursor() as reader:
            reader.execute(sql, params)
            while rows := reader.fetchmany(COPY_PAGE):
                rows = [row for row in rows if row[0] not in present]
                if rows:
                    with (
                        transaction.atomic(using=destination),
                        connections[destination].cursor() as writer,
                    ):
                        writer.executemany(insert, rows)
                    copied += len(rows)
        return copied

    def digest(self, alias: str, shards: list[int]) -> tuple[int, str]:
        """Row count and a checksum of every value of every row, in id order."""
        sql, params = self._select(alias, shards, self.columns)
        checksum = hashlib.blake2b(digest_size=16)
        count = 0
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(COPY_PAGE):
                for row in rows:
                    checksum.update(repr(row).encode())
                count += len(rows)
        return count, checksum.hexdigest()

    def delete(self, alias: str, shards: list[int]) -> int:
        if not shards:
            return 0
        quote = connections[alias].ops.quote_name
        where, params = self._where(alias, shards)
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            cursor.execute(f"DELETE FROM {quote(self.model._meta.db_table)} WHERE {where}", params)
            return cursor.rowcount
