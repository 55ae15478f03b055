"""How validated records reach their database: the two commit strategies, chosen once per run.

- PerRecordCommits: each worker commits each of its records in its own transaction. On a
  database that takes one writer at a time (SQLite) a worker that gets its process's turn on
  the database keeps it for RECORDS_PER_TURN records: handing a lock from thread to thread per
  record cost more than the transaction (measured: it halved the rate). The file itself is
  taken per transaction, so another process's worker writes while this one validates (two
  processes' orders phase: 5.5 s -> 4.5 s).
- GroupCommits (--batch-size): workers hand their records, in bundles, to one writer thread per
  database, which commits whatever is waiting, up to the batch size, in one transaction; each
  record still gets its own verdict.
"""

import itertools
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from django.db import connections

from ..results import InsertionResult, unexpected_failure
from ..services import PreparedRecord, commit_records
from ..topology import backend, database_for, shardmap
from .config import SimulationConfig
from .workers import SimulationError, start_thread

# Takes the results that finished together: one record's, or a batch's.
ResultsCallback = Callable[[list[InsertionResult]], None]
# Prepares (validates) the record of an index; None when preparing it failed (and was reported).
Preparer = Callable[[int], PreparedRecord | None]

RECORDS_PER_TURN = 32
# With hundreds of threads, idle ones would keep three files each open and exhaust the
# descriptor limit: above this many per model, per-record workers close them after a turn.
THREADS_KEEPING_CONNECTIONS = 64
# Workers hand records to a writer in bundles of up to this many: a queue operation per record
# cost a tenth of the time of group commit.
MAX_BUNDLE = 16
_STOP = object()


def commit_reporting_bugs(records: list[PreparedRecord]) -> list[InsertionResult]:
    """commit_records, and a failed verdict for each record if it raises (a bug, not bad data:
    reported, never dropped)."""
    try:
        return commit_records(records)
    except Exception as error:
        return [unexpected_failure(r.model, error, r.started, thread=r.thread) for r in records]


class PerRecordCommits:
    def __init__(self, threads: int, record_results: ResultsCallback) -> None:
        self.record_results = record_results
        self.close_after_turn = threads > THREADS_KEEPING_CONNECTIONS

    @contextmanager
    def running(self, models: Sequence[str]) -> Iterator[None]:
        yield  # nothing runs beside the workers

    def worker(
        self, model: str, prepare: Preparer, indexes: range, stop: threading.Event
    ) -> Callable[[], None]:
        # A sharded model's records go to several databases: no one database's turn to hold.
        database = None if shardmap.layout(model) else backend(database_for(model))
        turn = database.writer_lock().turn() if database and database.serialises_writers else None

        def commit(record: PreparedRecord | None) -> None:
            if record is not None:
                self.record_results(commit_reporting_bugs([record]))

        def work() -> None:
            remaining = itertools.takewhile(lambda _: not stop.is_set(), indexes)
            for index in remaining:
                # The first record of a turn is prepared before waiting: its latency has the wait.
                record = prepare(index)
                if turn is None:
                    commit(record)
                else:
                    with turn:
                        commit(record)
                        for index in itertools.islice(remaining, RECORDS_PER_TURN - 1):
                            commit(prepare(index))
                if self.close_after_turn:
                    connections.close_all()

        return work


class GroupCommits:
    def __init__(self, batch_size: int, record_results: ResultsCallback) -> None:
        self.batch_size = batch_size
        self.record_results = record_results
        self.writers: dict[str, _DatabaseWriter] = {}

    @contextmanager
    def running(self, models: Sequence[str]) -> Iterator[None]:
        """A writer per model's database for as long as the block runs."""
        self.writers = {
            model: _DatabaseWriter(database_for(model), self.batch_size, self.record_results)
            for model in models
        }
        try:
            for writer in self.writers.values():
                writer.start()
            yield
        finally:
            for writer in self.writers.values():
                writer.close()

    def worker(
        self, model: str, prepare: Preparer, indexes: range, stop: threading.Event
    ) -> Callable[[], None]:
        writer = self.writers[model]

        def work() -> None:
            bundle = writer.bundle()
            for index in itertools.takewhile(lambda _: not stop.is_set(), indexes):
                record = prepare(index)
                if record is not None:
                    bundle.add(record)
            bundle.flush()

        return work


def commit_strategy(
    config: SimulationConfig, record_results: ResultsCallback
) -> PerRecordCommits | GroupCommits:
    if config.batch_size:
        return GroupCommits(config.batch_size, record_results)
    return PerRecordCommits(config.threads, record_results)


class _Bundle:
    """A worker's records on their way to its database's writer."""

    def __init__(self, writer: "_DatabaseWriter", size: int) -> None:
        self.writer = writer
        self.size = size
        self.records: list[PreparedRecord] = []

    def add(self, record: PreparedRecord) -> None:
        if record.errors:  # rejected on its own fields: no database, no writer needed
            self.writer.record_results(commit_reporting_bugs([record]))
            return
        self.records.append(record)
        if len(self.records) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.records:
            self.writer.queue.put(self.records)
            self.records = []


class _DatabaseWriter:
    """One per database in group-commit mode: commits submitted records in batches."""

    def __init__(self, alias: str, batch_size: int, record_results: ResultsCallback) -> None:
        self.alias = alias
        self.batch_size = batch_size
        self.record_results = record_results
        # Bounded, so a fast producer cannot pile a million records up in memory.
        self.queue: queue.Queue = queue.Queue(maxsize=max(2 * batch_size // MAX_BUNDLE, 64))
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self.thread = start_thread(self._run, name=f"{self.alias}-writer")
        except RuntimeError as error:
            raise SimulationError(f"could not start the writer of {self.alias}: {error}") from None

    def bundle(self) -> _Bundle:
        return _Bundle(self, size=max(1, min(MAX_BUNDLE, self.batch_size // 8)))

    def close(self) -> None:
        if self.thread is not None:
            self.queue.put(_STOP)
            self.thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = self.queue.get()
            if batch is _STOP:
                break
            # Take what is waiting, up to a batch: a batch grows only while the last commit ran.
            while len(batch) < self.batch_size:
                try:
                    bundle = self.queue.get_nowait()
                except queue.Empty:
                    break
                if bundle is _STOP:
                    stopping = True
                    break
                batch += bundle
            for start in range(0, len(batch), self.batch_size):
                self.record_results(commit_reporting_bugs(batch[start : start + self.batch_size]))
