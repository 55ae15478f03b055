"""The engine behind every command: concurrent inserts into three databases, then a summary.

For each model, `threads` workers are released together by a barrier so their inserts really
overlap. Each worker validates its records; by default it commits each one in its own
transaction on its model's database, and with a batch size it hands them to one writer per
database that commits them in batches (group commit). Users and products go first,
concurrently; then orders, which reference the users and products committed in this run.
No other module starts a thread.
"""

import itertools
import platform
import queue
import sqlite3
import threading
import time
import uuid
from array import array
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

import django
from django.core.management import call_command
from django.db import DatabaseError, IntegrityError, OperationalError, connections, transaction
from django.db.models import Max

from distributed_system.routers import MODEL_DATABASES, database_for_model

from . import services
from .datasets import Dataset
from .models import Order, Product, User
from .statements import count_existing
from .summary import MODELS, ModelTally, RunSummary, build_summary

MODEL_CLASSES = {"user": User, "product": Product, "order": Order}
# An id this far above the largest one committed cannot exist during the run.
MISSING_ID_OFFSET = 1_000_000
RECORDS_PER_TURN = 32
MIGRATION_ATTEMPTS = 5
THREADS_KEEPING_CONNECTIONS = 64


@dataclass(frozen=True)
class SimulationConfig:
    threads: int = 10
    records: int = 10
    seed: int | None = None
    invalid_ratio: float = 0.1
    fresh: bool = False
    # None: each worker commits its own records, one transaction per record.
    # N: group commit, one writer per database committing up to N records per transaction.
    batch_size: int | None = None


ResultCallback = Callable[[services.InsertionResult], None]
# Takes the results that finished together: one record's, or a batch's.
ResultsCallback = Callable[[list[services.InsertionResult]], None]


class SimulationError(Exception):
    """The run could not be carried out (not a record's fault); the message says why."""


class DatabaseUnavailable(Exception):
    """A database cannot be used: corrupt, read-only, unreachable. The message says which."""


def migrate_databases() -> None:
    """Apply pending migrations to all four databases and make sure each one takes writes.

    A missing or empty SQLite file is created and migrated. A database that cannot be used
    raises DatabaseUnavailable before any record is attempted.
    """
    for alias in ("default", *MODEL_DATABASES.values()):
        try:
            _migrate(alias)
            _check_writable(alias)
        except (DatabaseError, OSError) as error:
            location = describe_database(alias)["location"]
            raise DatabaseUnavailable(f"{alias} ({location}): {error}") from error
        finally:
            connections[alias].close()


def _migrate(alias: str) -> None:
    # Two first runs at once race on a new file, and the one that loses fails at once: both
    # create the tables ("already exists"), both add the content types and permissions of
    # Django's post_migrate (UNIQUE constraint failed), and both open the file to switch it to
    # WAL, which SQLite refuses without waiting for its timeout ("database is locked" while
    # connecting). Trying again, the loser finds what the winner committed: nothing left to do.
    for attempt in range(MIGRATION_ATTEMPTS):
        try:
            call_command("migrate", database=alias, verbosity=0, interactive=False)
            return
        except DatabaseError as error:
            if not _lost_migration_race(alias, error) or attempt == MIGRATION_ATTEMPTS - 1:
                raise
            connections[alias].close()
            time.sleep(0.2 * (attempt + 1))


def _lost_migration_race(alias: str, error: DatabaseError) -> bool:
    if isinstance(error, IntegrityError) or "already exists" in str(error):
        return True
    # A lock that outlasted the timeout on an open connection is not a race: report it.
    opening = connections[alias].connection is None
    return opening and isinstance(error, OperationalError) and services.is_transient(error)


def _check_writable(alias: str) -> None:
    """On SQLite, BEGIN IMMEDIATE: fails now if the file or its directory is read-only."""
    try:
        with transaction.atomic(using=alias):
            pass
    except OperationalError as error:
        if not services.is_transient(error):
            raise  # busy is not broken: the run waits for the lock, or reports what failed


def describe_databases() -> dict[str, dict[str, str]]:
    return {alias: describe_database(alias) for alias in MODEL_DATABASES.values()}


def describe_database(alias: str) -> dict[str, str]:
    """An alias's engine and where it lives: a file, or a host and database; no password."""
    connection = connections[alias]
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        location = str(settings["NAME"])
    else:
        host = settings.get("HOST") or "localhost"
        port = f":{settings['PORT']}" if settings.get("PORT") else ""
        location = f"{host}{port}/{settings['NAME']}"
    return {"engine": connection.vendor, "location": location}


def count_existing_ids(model, ids) -> int:
    """How many of `ids` are rows of `model` now: this run's own rows, whatever else writes."""
    return count_existing(model, database_for_model(model), "id", ids)


def count_rows() -> dict[str, int]:
    return {model: cls.objects.count() for model, cls in MODEL_CLASSES.items()}


def empty_databases() -> None:
    for cls in MODEL_CLASSES.values():
        cls.objects.all().delete()


def run_simulation(
    config: SimulationConfig,
    on_result: ResultCallback | None = None,
    stop: threading.Event | None = None,
) -> RunSummary:
    """Run the simulation; `on_result` sees every verdict as it comes (from worker threads).

    Setting `stop` (Ctrl-C) makes workers take no new record; records already taken are
    committed or rolled back, and the summary counts what was done and says it was interrupted.
    """
    stop = stop or threading.Event()
    run_id = uuid.uuid4().hex[:12]
    started_at = datetime.now(UTC)
    if config.fresh:
        empty_databases()
    rows_before = count_rows()
    dataset = Dataset(
        records=config.records,
        tag=run_id[:8],
        seed=config.seed,
        invalid_ratio=config.invalid_ratio,
    )
    if not dataset.is_demo and config.seed is None:
        dataset = replace(dataset, seed=0)
    run_started = time.perf_counter()
    tallies = {model: ModelTally(model, run_started) for model in MODELS}

    output_errors: list[str] = []

    def record_results(results: list[services.InsertionResult]) -> None:
        tallies[results[0].model].add_all(results)
        if on_result is not None and not output_errors:
            try:
                for result in results:
                    on_result(result)
            except Exception as error:  # a closed pipe, a full disk: counting goes on
                output_errors.append(f"{type(error).__name__}: {error}")

    _run_concurrently(
        {
            "user": lambda index: services.prepare_user(**dataset.user(index)),
            "product": lambda index: services.prepare_product(**dataset.product(index)),
        },
        config,
        record_results,
        stop,
    )
    user_ids = ascending(tallies["user"].inserted_pks)
    product_ids = ascending(tallies["product"].inserted_pks)
    missing_user_id = _largest_id(User) + MISSING_ID_OFFSET
    missing_product_id = _largest_id(Product) + MISSING_ID_OFFSET
    _run_concurrently(
        {
            "order": lambda index: services.prepare_order(
                **dataset.order(index, user_ids, product_ids, missing_user_id, missing_product_id)
            )
        },
        config,
        record_results,
        stop,
    )
    duration = time.perf_counter() - run_started
    return build_summary(
        run_id=run_id,
        started_at=started_at.isoformat(timespec="seconds"),
        duration_seconds=duration,
        config={**asdict(config), "seed": dataset.seed, "demo_data": dataset.is_demo},
        environment=_environment(),
        databases=describe_databases(),
        tallies=tallies,
        model_databases=MODEL_DATABASES,
        rows_before=rows_before,
        rows_after=count_rows(),
        rows_found={
            model: count_existing_ids(MODEL_CLASSES[model], tally.inserted_pks)
            for model, tally in tallies.items()
        },
        interrupted=stop.is_set(),
        output_error=output_errors[0] if output_errors else None,
    )


def ascending(ids: array) -> array:
    """The ids in ascending order, kept as compact as the tally keeps them: 8 bytes each, where
    a list of ten million ints takes 360 MB. Ids are handed out in commit order, so the tally's
    are nearly always ascending already and sorting is a check."""
    if all(earlier < later for earlier, later in itertools.pairwise(ids)):
        return ids
    return array(ids.typecode, sorted(ids))


def _run_concurrently(
    preparers: dict[str, Callable[[int], services.PreparedRecord]],
    config: SimulationConfig,
    record_results: ResultsCallback,
    stop: threading.Event,
) -> None:
    """Start `config.threads` workers per model, release them together, wait for all.

    Without a batch size each worker commits its own records, one transaction each. With one,
    workers hand their validated records to one writer per database, which commits them in
    batches (group commit) and reports each record's verdict.
    """
    writers = {}
    if config.batch_size:
        writers = {
            model: _DatabaseWriter(MODEL_DATABASES[model], config.batch_size, record_results)
            for model in preparers
        }
    workers = []
    barrier = threading.Barrier(config.threads * len(preparers))
    for model, prepare in preparers.items():
        # SQLite takes one writer at a time: workers take turns on it (see _work).
        sqlite = connections[MODEL_DATABASES[model]].vendor == "sqlite"
        turn = threading.Lock() if sqlite and not writers else None
        for number in range(config.threads):
            workers.append(
                threading.Thread(
                    target=_work,
                    args=(barrier, model, prepare, record_results, turn, stop),
                    kwargs={
                        "indexes": range(number, config.records, config.threads),
                        "commit": (
                            writers[model].bundle() if writers else _Committer(record_results)
                        ),
                        # With hundreds of threads, idle ones would keep three files each open
                        # and exhaust the descriptor limit: they hold connections only in a turn.
                        "close_after_turn": config.threads > THREADS_KEEPING_CONNECTIONS,
                    },
                    name=f"{model}-worker-{number + 1:03d}",
                )
            )
    if config.records:
        # Validating one record first compiles Django's lazy validators (the email regexes)
        # once here, instead of in every thread at once when the barrier opens.
        for prepare in preparers.values():
            prepare(0)
    threads = [*(writer.thread for writer in writers.values()), *workers]
    refused = None
    try:
        for thread in threads:
            thread.start()
    except RuntimeError as error:  # the system refused a thread: call off the ones waiting
        refused = error
        barrier.abort()
        stop.set()
    for worker in workers:
        if worker.ident is not None:  # started
            worker.join()
    for writer in writers.values():
        if writer.thread.ident is not None:
            writer.close()
    if refused is not None:
        started = sum(thread.ident is not None for thread in threads)
        raise SimulationError(
            f"could not start {len(threads)} threads ({refused}); {started} started. "
            "Try fewer --threads."
        )


class _Committer:
    """Per-record mode: each record committed at once, in the worker's own transaction."""

    def __init__(self, record_results: ResultsCallback) -> None:
        self.record_results = record_results

    def __call__(self, record: services.PreparedRecord) -> None:
        self.record_results(_commit_reporting_bugs([record]))

    def flush(self) -> None:
        pass


def _commit_reporting_bugs(
    records: list[services.PreparedRecord],
) -> list[services.InsertionResult]:
    try:
        return services.commit_records(records)
    except Exception as error:  # a bug, not bad data: report it, never drop the record
        return [
            services.unexpected_failure(r.model, error, r.started, thread=r.thread) for r in records
        ]


def _work(
    barrier: threading.Barrier,
    model: str,
    prepare: Callable[[int], services.PreparedRecord],
    record_results: ResultsCallback,
    turn: AbstractContextManager | None,
    stop: threading.Event,
    indexes: range,
    commit: "_Committer | _Bundle",
    close_after_turn: bool,
) -> None:
    """Prepare and commit each record of `indexes`, one transaction per record.

    With a `turn` (per-record mode on SQLite, which serialises writers anyway), a worker that
    gets the turn commits up to RECORDS_PER_TURN of its records before passing it on: handing
    a lock from thread to thread costs more than a transaction (measured: it halved the rate).
    The first record of a turn is prepared before waiting, so its latency includes the wait.
    """

    def prepare_reporting_bugs(index: int) -> services.PreparedRecord | None:
        started = time.perf_counter()
        try:
            return prepare(index)
        except Exception as error:  # a bug, not bad data: report it, never drop the record
            record_results([services.unexpected_failure(model, error, started)])
            return None

    try:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return  # the run was called off before it began
        remaining = itertools.takewhile(lambda _: not stop.is_set(), indexes)
        for index in remaining:
            record = prepare_reporting_bugs(index)
            if turn is None:
                if record is not None:
                    commit(record)
                if close_after_turn:
                    connections.close_all()
                continue
            with turn:
                if record is not None:
                    commit(record)
                for index in itertools.islice(remaining, RECORDS_PER_TURN - 1):
                    record = prepare_reporting_bugs(index)
                    if record is not None:
                        commit(record)
                if close_after_turn:
                    connections.close_all()
        commit.flush()
    finally:
        # Connections are per thread: close this thread's, or their files stay open.
        connections.close_all()


_STOP = object()
# Workers hand records to a writer in bundles of up to this many: a queue operation per record
# cost a tenth of the time of group commit.
MAX_BUNDLE = 16


class _Bundle:
    """A worker's records on their way to its database's writer."""

    def __init__(self, writer: "_DatabaseWriter", size: int) -> None:
        self.writer = writer
        self.size = size
        self.records: list[services.PreparedRecord] = []

    def __call__(self, record: services.PreparedRecord) -> None:
        if record.errors:  # rejected on its own fields: no database, no writer needed
            self.writer.record_results(_commit_reporting_bugs([record]))
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
        self.batch_size = batch_size
        self.record_results = record_results
        # Bounded, so a fast producer cannot pile a million records up in memory.
        self.queue: queue.Queue = queue.Queue(maxsize=max(2 * batch_size // MAX_BUNDLE, 64))
        self.thread = threading.Thread(target=self._run, name=f"{alias}-writer")

    def bundle(self) -> "_Bundle":
        return _Bundle(self, size=max(1, min(MAX_BUNDLE, self.batch_size // 8)))

    def close(self) -> None:
        self.queue.put(_STOP)
        self.thread.join()

    def _run(self) -> None:
        try:
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
                    self.record_results(
                        _commit_reporting_bugs(batch[start : start + self.batch_size])
                    )
        finally:
            connections.close_all()


def _largest_id(model) -> int:
    return model.objects.aggregate(largest=Max("id"))["largest"] or 0


def _environment() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "django": django.get_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(terse=True),
    }
