"""Counting while a run goes on: a ModelTally per model, fed by many threads at once, in bounded
memory (counts, a histogram, a capped sample of records). The tallies of a run's slices merge
(RunTally.merge) into the tally of the whole; build_summary() then turns it, with the rows
counted in each database, into the RunSummary every output renders.
"""

import base64
import math
import threading
import time
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from typing import Any

from .histogram import LatencyHistogram
from .reference_cache import CacheCounts
from .results import MODELS, InsertionResult, Status
from .summary import (
    INSERTED_RECORDS_KEPT,
    PERCENTILES,
    PROBLEM_RECORDS_KEPT,
    TIMELINE_POINTS,
    TIMELINE_RESOLUTION_SECONDS,
    CacheSummary,
    DatabaseRows,
    FaultSummary,
    LatencySummary,
    ModelSummary,
    ReasonCount,
    RecordDetail,
    RunSummary,
    ThreadSummary,
)
from .topology import shardmap


class _ThreadTally:
    __slots__ = ("handled", "inserted", "rejected", "failed", "latency")

    def __init__(self) -> None:
        self.handled = self.inserted = self.rejected = self.failed = 0
        self.latency = 0.0

    def merge(self, other: "_ThreadTally") -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class ModelTally:
    """Everything a summary needs from one model's results, fed by many threads at once."""

    def __init__(
        self,
        model: str,
        run_started: float,
        fault_windows: Sequence[tuple[float, float]] = (),
        sharded: bool = False,
    ) -> None:
        self.model = model
        self.run_started = run_started
        # Per injected fault of the run: its window in seconds from the start, or None when it
        # does not touch this model's records; and what became of the records in it.
        self.fault_windows = list(fault_windows)
        self.fault_touched = [Counter() for _ in self.fault_windows]
        self.retried = 0
        self.failed_fast = 0
        # Inserted by an earlier attempt of a redone slice, found by their identity
        self.found_committed = 0
        self.first_started: float | None = None
        self.last_finished: float | None = None
        self.counts = Counter()
        # Rows committed in each database, for a sharded model only (its progress per database)
        self.committed_by_database: Counter[str] | None = Counter() if sharded else None
        self.histogram = LatencyHistogram()
        self.threads: dict[str, _ThreadTally] = {}
        self.reasons: Counter[tuple[str, str, str]] = Counter()
        self.timeline: Counter[int] = Counter()
        self.inserted_pks = array("q")
        self.records: list[RecordDetail] = []
        self.problem_records_kept = 0
        self.inserted_records_kept = 0
        # What this model's checks asked of the shared cache, per model asked about (an order's
        # checks ask about users and products); None: no shared cache
        self.cache_counts: dict[str, CacheCounts] | None = None
        self._lock = threading.Lock()

    def add_all(self, results: Sequence[InsertionResult]) -> None:
        """Count results that finished together: one record's, or a batch's (one lock for all)."""
        finished = time.perf_counter()
        bucket = int((finished - self.run_started) / TIMELINE_RESOLUTION_SECONDS)
        counts, record_latency, threads = self.counts, self.histogram.record, self.threads
        windows, by_database = self.fault_windows, self.committed_by_database
        inserted, rejected = Status.INSERTED, Status.REJECTED  # an enum lookup costs 55 ns
        with self._lock:
            if self.last_finished is None or finished > self.last_finished:
                self.last_finished = finished
            for result in results:
                latency = result.latency
                started = finished - latency
                if self.first_started is None or started < self.first_started:
                    self.first_started = started
                counts[result.status] += 1
                record_latency(latency)
                if result.attempts > 1:
                    self.retried += 1
                if windows:
                    self._count_in_fault_windows(result, started, finished)
                thread = threads.get(result.thread)
                if thread is None:
                    thread = threads[result.thread] = _ThreadTally()
                thread.handled += 1
                thread.latency += latency
                if result.status == inserted:
                    thread.inserted += 1
                    self.inserted_pks.append(result.pk)
                    if result.found_committed:
                        self.found_committed += 1
                    self.timeline[bucket] += 1
                    if by_database is not None:  # persistence.mark_saved set the instance's alias
                        by_database[result.instance._state.db] += 1
                    keep = self.inserted_records_kept < INSERTED_RECORDS_KEPT
                    self.inserted_records_kept += keep
                else:
                    if result.status == rejected:
                        thread.rejected += 1
                    else:
                        thread.failed += 1
                        self.failed_fast += result.failed_fast
                    for name, messages in result.errors.items():
                        for message in messages:
                            self.reasons[(result.status, name, message)] += 1
                    keep = self.problem_records_kept < PROBLEM_RECORDS_KEPT
                    self.problem_records_kept += keep
                if keep:
                    self.records.append(
                        RecordDetail(
                            status=result.status,
                            values=result.values,
                            reasons=result.reasons,
                            thread=result.thread,
                            latency_ms=round(latency * 1000, 3),
                            pk=result.pk,
                        )
                    )

    def add_cache_counts(self, counts: dict[str, CacheCounts] | None) -> None:
        """Add what the shared cache counted for these records (reference_cache.take_counts())."""
        with self._lock:
            self.cache_counts = _added_counts(self.cache_counts, counts)

    def progress(self) -> tuple[dict[str, int], LatencyHistogram, dict[str, int]]:
        """The counts so far, a copy of the latency histogram and the rows committed in each
        database (empty unless sharded), read together under the lock (the progress sampler's
        view of a run that goes on)."""
        histogram = LatencyHistogram()
        with self._lock:
            histogram.merge(self.histogram)
            return dict(self.counts), histogram, dict(self.committed_by_database or {})

    def _count_in_fault_windows(
        self, result: InsertionResult, started: float, finished: float
    ) -> None:
        """Count the result under each fault that held while it was in flight."""
        for index, window in enumerate(self.fault_windows):
            if (
                window
                and started - self.run_started < window[1]
                and finished - self.run_started >= window[0]
            ):
                self.fault_touched[index][result.status] += 1

    @property
    def attempted(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: "ModelTally") -> None:
        """Add another slice's tally of the same model (same time origin) to this one."""
        with self._lock:
            self.first_started = _earliest(self.first_started, other.first_started)
            if other.last_finished is not None:
                self.last_finished = max(
                    self.last_finished or other.last_finished, other.last_finished
                )
            self.counts.update(other.counts)
            if self.committed_by_database is not None and other.committed_by_database:
                self.committed_by_database.update(other.committed_by_database)
            self.retried += other.retried
            self.failed_fast += other.failed_fast
            self.found_committed += other.found_committed
            for mine, theirs in zip(self.fault_touched, other.fault_touched, strict=True):
                mine.update(theirs)
            self.histogram.merge(other.histogram)
            for name, thread in other.threads.items():
                self.threads.setdefault(name, _ThreadTally()).merge(thread)
            self.reasons.update(other.reasons)
            self.timeline.update(other.timeline)
            self.cache_counts = _added_counts(self.cache_counts, other.cache_counts)
            self.inserted_pks.extend(other.inserted_pks)
            for record in other.records:
                inserted = record.status == Status.INSERTED
                if inserted and self.inserted_records_kept < INSERTED_RECORDS_KEPT:
                    self.inserted_records_kept += 1
                elif not inserted and self.problem_records_kept < PROBLEM_RECORDS_KEPT:
                    self.problem_records_kept += 1
                else:
                    continue
                self.records.append(record)

    def to_wire(self) -> dict[str, Any]:
        """A JSON form of the tally, its times in seconds from the run's start, for another
        process or machine to merge (from_wire)."""
        with self._lock:
            return {
                "first_started": _offset(self.first_started, self.run_started),
                "last_finished": _offset(self.last_finished, self.run_started),
                "counts": dict(self.counts),
                "committed_by_database": dict(self.committed_by_database or {}),
                "retried": self.retried,
                "failed_fast": self.failed_fast,
                "found_committed": self.found_committed,
                "fault_touched": [dict(touched) for touched in self.fault_touched],
                "histogram": self.histogram.to_wire(),
                "threads": {
                    name: [t.handled, t.inserted, t.rejected, t.failed, t.latency]
                    for name, t in self.threads.items()
                },
                "reasons": [[*key, count] for key, count in self.reasons.items()],
                "timeline": [[bucket, count] for bucket, count in self.timeline.items()],
                # 8 bytes an id, ascending mostly: zlib takes it to about a third
                "inserted_pks": base64.b64encode(
                    zlib.compress(self.inserted_pks.tobytes())
                ).decode(),
                "records": [asdict(record) for record in self.records],
                "cache_counts": None
                if self.cache_counts is None
                else {model: asdict(counts) for model, counts in self.cache_counts.items()},
            }

    def add_wire(self, data: dict[str, Any]) -> None:
        """Merge a tally sent by another process or machine (to_wire)."""
        other = ModelTally(self.model, self.run_started, self.fault_windows)
        other.first_started = _at(data["first_started"], self.run_started)
        other.last_finished = _at(data["last_finished"], self.run_started)
        other.counts.update({Status(status): n for status, n in data["counts"].items()})
        if data["committed_by_database"]:
            other.committed_by_database = Counter(data["committed_by_database"])
        other.retried = data["retried"]
        other.failed_fast = data["failed_fast"]
        other.found_committed = data["found_committed"]
        other.fault_touched = [
            Counter({Status(status): n for status, n in touched.items()})
            for touched in data["fault_touched"]
        ]
        other.histogram = LatencyHistogram.from_wire(data["histogram"])
        for name, (handled, inserted, rejected, failed, latency) in data["threads"].items():
            thread = other.threads[name] = _ThreadTally()
            thread.handled, thread.inserted, thread.rejected = handled, inserted, rejected
            thread.failed, thread.latency = failed, latency
        other.reasons.update(
            {(status, name, message): n for status, name, message, n in data["reasons"]}
        )
        other.timeline.update({bucket: count for bucket, count in data["timeline"]})
        other.inserted_pks.frombytes(zlib.decompress(base64.b64decode(data["inserted_pks"])))
        other.records = [RecordDetail(**record) for record in data["records"]]
        if data.get("cache_counts") is not None:
            other.cache_counts = {
                model: CacheCounts(**counts) for model, counts in data["cache_counts"].items()
            }
        self.merge(other)


def _offset(moment: float | None, origin: float) -> float | None:
    return None if moment is None else moment - origin


def _at(offset: float | None, origin: float) -> float | None:
    return None if offset is None else origin + offset


def _added_counts(
    total: dict[str, CacheCounts] | None, counts: dict[str, CacheCounts] | None
) -> dict[str, CacheCounts] | None:
    """`counts` added into `total` (None: nothing counted, no shared cache)."""
    if counts is None:
        return total
    total = {} if total is None else total
    for model, count in counts.items():
        total.setdefault(model, CacheCounts()).add(count)
    return total


def _earliest(first: float | None, second: float | None) -> float | None:
    return second if first is None else first if second is None else min(first, second)


class RunTally:
    """The tallies of every model for one slice of a run, or for the whole run once the
    slices' tallies are merged."""

    def __init__(self, run_started: float, faults: Sequence[Any] = ()) -> None:
        """`faults`: the run's injected faults (engine.faults.Fault), whose windows are watched."""
        self.faults = list(faults)
        self.models = {
            model: ModelTally(
                model,
                run_started,
                [(f.start, f.end) if model in f.models() else None for f in self.faults],
                sharded=shardmap.layout(model) is not None,
            )
            for model in MODELS
        }

    def add_all(self, results: Sequence[InsertionResult]) -> None:
        """Count results that finished together (all of one model)."""
        self.models[results[0].model].add_all(results)

    def results_counter(
        self, also: Callable[[list[InsertionResult]], None]
    ) -> Callable[[list[InsertionResult]], None]:
        """A callback for the engine: counts the results, then hands them to `also`."""

        def count(results: list[InsertionResult]) -> None:
            self.add_all(results)
            also(results)

        return count

    def merge(self, other: "RunTally") -> None:
        for model, tally in other.models.items():
            self.models[model].merge(tally)

    def to_wire(self, models: Iterable[str] | None = None) -> dict[str, Any]:
        """The tallies of `models` (all by default) in their JSON form."""
        return {model: self.models[model].to_wire() for model in models or self.models}

    def add_wire(self, data: dict[str, Any]) -> None:
        for model, tally in data.items():
            self.models[model].add_wire(tally)

    @classmethod
    def merged(
        cls, tallies: Iterable["RunTally"], run_started: float, faults: Sequence[Any] = ()
    ) -> "RunTally":
        whole = cls(run_started, faults)
        for tally in tallies:
            whole.merge(tally)
        return whole


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _latency_summary(histogram: LatencyHistogram) -> LatencySummary:
    if not histogram.count:
        return LatencySummary(0, 0, 0, 0, 0, 0, 0, 0, 0)
    return LatencySummary(
        count=histogram.count,
        min=_ms(histogram.minimum),
        mean=_ms(histogram.mean),
        max=_ms(histogram.maximum),
        **{name: _ms(histogram.percentile(p)) for name, p in PERCENTILES.items()},
    )


def _latency_histogram(histogram: LatencyHistogram) -> list[list[float]]:
    """Counts in buckets five to a decade (0.1, 0.16, 0.25, 0.4, 0.63, 1 ms ...), trimmed."""
    if not histogram.count:
        return []
    low = 10 ** (math.floor(math.log10(max(histogram.minimum, 1e-6)) * 5) / 5)
    edges = [low]
    while edges[-1] <= histogram.maximum:
        edges.append(edges[-1] * 10**0.2)
    counts = histogram.coarse(edges)
    return [[_ms(upper), count] for upper, count in zip(edges[1:], counts, strict=False)]


def build_summary(
    *,
    run_id: str,
    started_at: str,
    duration_seconds: float,
    config: dict[str, Any],
    environment: dict[str, str],
    databases: dict[str, dict[str, str]],
    tallies: dict[str, ModelTally],
    model_databases: dict[str, str],
    rows_before: dict[str, int],
    rows_after: dict[str, int],
    rows_found: dict[str, int] | None = None,
    rows_found_by_database: dict[str, dict[str, int]] | None = None,
    faults: list[FaultSummary] | None = None,
    interrupted: bool = False,
    output_error: str | None = None,
    reference_cache: dict[str, CacheCounts] | None = None,
) -> RunSummary:
    interval = _timeline_interval(duration_seconds)
    if rows_found_by_database is not None:
        rows_found = {model: sum(found.values()) for model, found in rows_found_by_database.items()}
    models = {}
    for model, tally in tallies.items():
        wall = (
            tally.last_finished - tally.first_started
            if tally.first_started is not None and tally.last_finished is not None
            else 0.0
        )
        inserted = tally.counts[Status.INSERTED]
        steps = max(1, round(interval / TIMELINE_RESOLUTION_SECONDS))
        points = math.ceil(duration_seconds / interval) if duration_seconds else 0
        timeline = [0] * points
        for bucket, count in tally.timeline.items():
            timeline[min(points - 1, bucket // steps)] += count
        models[model] = ModelSummary(
            model=model,
            database=model_databases[model],
            attempted=tally.attempted,
            inserted=inserted,
            rejected=tally.counts[Status.REJECTED],
            failed=tally.counts[Status.FAILED],
            wall_seconds=round(wall, 4),
            rows_per_second=round(inserted / wall, 1) if wall > 0 else 0.0,
            latency_ms=_latency_summary(tally.histogram),
            rows_before=rows_before[model],
            rows_after=rows_after[model],
            latency_histogram=_latency_histogram(tally.histogram),
            timeline=timeline,
            timeline_interval_seconds=interval,
            threads=[
                ThreadSummary(
                    thread=name,
                    handled=t.handled,
                    inserted=t.inserted,
                    rejected=t.rejected,
                    failed=t.failed,
                    mean_latency_ms=_ms(t.latency / t.handled) if t.handled else 0.0,
                )
                for name, t in sorted(tally.threads.items())
            ],
            reasons=[
                ReasonCount(status=status, field=name, message=message, count=count)
                for (status, name, message), count in tally.reasons.most_common()
            ],
            records=tally.records,
            records_omitted=tally.attempted - len(tally.records),
            rows_found=rows_found[model] if rows_found is not None else None,
            database_rows=_database_rows(
                (rows_found_by_database or {}).get(model, {}), round(wall, 4)
            ),
            retried=tally.retried,
            failed_fast=tally.failed_fast,
        )
    return RunSummary(
        faults=faults or [],
        run_id=run_id,
        started_at=started_at,
        duration_seconds=round(duration_seconds, 4),
        config=config,
        environment=environment,
        databases=databases,
        models=models,
        interrupted=interrupted,
        output_error=output_error,
        reference_cache=[
            CacheSummary(
                model=model,
                hits=counts.hits,
                misses=counts.misses,
                errors=counts.errors,
                database_ms_per_id=round(counts.database_seconds_per_id * 1000, 4),
                cache_ms=round(counts.cache_seconds * 1000, 3),
            )
            for model, counts in (reference_cache or {}).items()
        ],
    )


def _database_rows(found: dict[str, int], wall_seconds: float) -> list[DatabaseRows]:
    """This run's rows in each database of a sharded model (none for a model in one)."""
    if len(found) < 2:
        return []
    return [
        DatabaseRows(
            database=alias,
            rows=rows,
            rows_per_second=round(rows / wall_seconds, 1) if wall_seconds > 0 else 0.0,
        )
        for alias, rows in sorted(found.items(), key=lambda item: alias_order(item[0]))
    ]


def alias_order(alias: str) -> tuple[str, int]:
    base, _, number = alias.rpartition("_")
    return (base, int(number)) if number.isdigit() else (alias, -1)


def _timeline_interval(duration_seconds: float) -> float:
    """A round interval that cuts the run into at most TIMELINE_POINTS pieces."""
    raw = max(duration_seconds / TIMELINE_POINTS, TIMELINE_RESOLUTION_SECONDS)
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if step >= raw:
            return step
    return math.ceil(raw / 600) * 600
