"""Progress while a run goes on: a sampler thread reads the run's tallies once an interval and
hands a ProgressSnapshot (per model and database: counts so far, rows/s and latency percentiles
in the interval) to a callback, like pgbench's -P lines.

Sampling copies each model's counts and latency histogram under the tally's lock (a few hundred
integers), so the workers wait on it for microseconds once a second.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..histogram import LatencyHistogram
from ..results import Status
from ..tallies import RunTally, alias_order
from ..topology import MODEL_DATABASES
from .workers import start_thread

PROGRESS_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class DatabaseProgress:
    """One database of a sharded model: its rows committed so far and in the interval."""

    database: str
    committed: int
    rows_per_second: float


@dataclass(frozen=True, slots=True)
class ModelProgress:
    model: str
    database: str
    committed: int
    rejected: int
    failed: int
    # in the interval since the previous snapshot
    rows_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    # per database, for a model sharded over several (none otherwise)
    databases: tuple[DatabaseProgress, ...] = ()


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    sequence: int
    elapsed_seconds: float
    models: tuple[ModelProgress, ...]


ProgressCallback = Callable[[ProgressSnapshot], None]


class ProgressSampler:
    """Turns successive readings of a RunTally into snapshots of what happened in between."""

    def __init__(self, tally: RunTally, run_started: float) -> None:
        self.tally = tally
        self.run_started = run_started
        self.sequence = 0
        self.previous_time = run_started
        self.previous = {model: (0, LatencyHistogram(), {}) for model in tally.models}

    def sample(self) -> ProgressSnapshot:
        now = time.perf_counter()
        interval = max(now - self.previous_time, 1e-9)
        models = []
        for model, model_tally in self.tally.models.items():
            counts, histogram, by_database = model_tally.progress()
            committed = counts.get(Status.INSERTED, 0)
            previous_committed, previous_histogram, previous_by_database = self.previous[model]
            in_interval = histogram.since(previous_histogram)
            models.append(
                ModelProgress(
                    model=model,
                    database=MODEL_DATABASES[model],
                    committed=committed,
                    rejected=counts.get(Status.REJECTED, 0),
                    failed=counts.get(Status.FAILED, 0),
                    rows_per_second=round((committed - previous_committed) / interval, 1),
                    p50_ms=_ms(in_interval.percentile(50)),
                    p95_ms=_ms(in_interval.percentile(95)),
                    p99_ms=_ms(in_interval.percentile(99)),
                    databases=_per_database(by_database, previous_by_database, interval),
                )
            )
            self.previous[model] = (committed, histogram, by_database)
        self.previous_time = now
        self.sequence += 1
        return ProgressSnapshot(
            sequence=self.sequence,
            elapsed_seconds=round(now - self.run_started, 3),
            models=tuple(models),
        )


@contextmanager
def sampling_progress(
    tally: RunTally,
    run_started: float,
    on_progress: ProgressCallback | None,
    interval_seconds: float = PROGRESS_INTERVAL_SECONDS,
) -> Iterator[None]:
    """While the block runs, `on_progress` gets a snapshot every interval from a thread of its
    own, and a last one when the block ends (so even a short run has one)."""
    if on_progress is None:
        yield
        return
    sampler = ProgressSampler(tally, run_started)
    finished = threading.Event()

    def sample_until_finished() -> None:
        while not finished.wait(interval_seconds):
            on_progress(sampler.sample())

    thread = start_thread(sample_until_finished, name="progress-sampler")
    try:
        yield
    finally:
        finished.set()
        thread.join()
        on_progress(sampler.sample())


def _per_database(
    committed: dict[str, int], previous: dict[str, int], interval: float
) -> tuple[DatabaseProgress, ...]:
    if len(committed) < 2:
        return ()
    return tuple(
        DatabaseProgress(
            database=alias,
            committed=rows,
            rows_per_second=round((rows - previous.get(alias, 0)) / interval, 1),
        )
        for alias, rows in sorted(committed.items(), key=lambda item: alias_order(item[0]))
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
