"""The summary of a run: the one object the console, the JSON and the PDF render.

Its numbers are counted once, in tallies.py, while the run goes on; here they are plain data
that round-trips through JSON (to_dict/from_dict: --json and --from-json). Its `problems` are
the one verdict the console, the PDF's verdict line and the command's exit status all render.
"""

import re
from dataclasses import asdict, dataclass, field
from typing import Any

INTERRUPTED_EXIT_CODE = 130  # what shells report for a process stopped by Ctrl-C
PERCENTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99, "p99_9": 99.9}
# Every rejected or failed record is kept up to this many per model, successes up to the other;
# beyond that they are counted, not stored, so a million-record run stays small.
PROBLEM_RECORDS_KEPT = 1000
INSERTED_RECORDS_KEPT = 200
TIMELINE_RESOLUTION_SECONDS = 0.01
TIMELINE_POINTS = 60
# The phase of a spread run that inserts each model's records (engine/run.py's PHASES): a
# thread's slice ran on the executor that finished that slice in its model's phase.
MODEL_PHASES = {"user": 1, "product": 1, "order": 2}
# A spread run's thread names start with their slice: "s2-user-worker-001".
SLICE_PREFIX = re.compile(r"^s(\d+)-")


@dataclass
class RecordDetail:
    status: str
    values: dict[str, str]
    reasons: str
    thread: str
    latency_ms: float
    pk: int | None


@dataclass
class ThreadSummary:
    thread: str
    handled: int
    inserted: int
    rejected: int
    failed: int
    mean_latency_ms: float


@dataclass
class ReasonCount:
    status: str
    field: str
    message: str
    count: int


@dataclass
class LatencySummary:
    count: int
    min: float
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    p99_9: float
    max: float


@dataclass
class DatabaseRows:
    """One database of a sharded model: the run's rows found there, and their rate."""

    database: str
    rows: int
    rows_per_second: float


@dataclass
class ModelSummary:
    model: str
    database: str
    attempted: int
    inserted: int
    rejected: int
    failed: int
    wall_seconds: float
    rows_per_second: float
    latency_ms: LatencySummary
    rows_before: int
    rows_after: int
    # [upper bound in ms, count] per log bucket; the last bound is the maximum latency
    latency_histogram: list[list[float]] = field(default_factory=list)
    # rows committed in each interval of `timeline_interval_seconds` since the run started
    timeline: list[int] = field(default_factory=list)
    timeline_interval_seconds: float = 0.0
    threads: list[ThreadSummary] = field(default_factory=list)
    reasons: list[ReasonCount] = field(default_factory=list)
    records: list[RecordDetail] = field(default_factory=list)
    records_omitted: int = 0
    # this run's inserted rows found in the database afterwards, by primary key
    rows_found: int | None = None
    # a sharded model's rows_found in each of its databases (empty for a model in one)
    database_rows: list[DatabaseRows] = field(default_factory=list)

    @property
    def skew(self) -> float | None:
        """The largest database's rows over the mean of its model's databases (1.0: even);
        None for a model in one database, or with no rows."""
        rows = [database.rows for database in self.database_rows]
        if len(rows) < 2 or not sum(rows):
            return None
        return max(rows) / (sum(rows) / len(rows))

    # records whose transaction was tried more than once (transient errors), and failed ones
    # that failed at once because a database's circuit breaker was open
    retried: int = 0
    failed_fast: int = 0

    @property
    def failed_after_waiting(self) -> int:
        """Failed records that were tried, retries and waits for locks included."""
        return self.failed - self.failed_fast

    @property
    def rows_added(self) -> int:
        return self.rows_after - self.rows_before

    @property
    def reconciled(self) -> bool:
        """Every row the run says it inserted is in the database (other writers aside)."""
        if self.rows_found is None:  # a run saved before rows were found by key
            return self.rows_added == self.inserted
        return self.rows_found == self.inserted

    @property
    def valid_committed_share(self) -> float:
        """Of the records that passed validation, the share that was committed."""
        valid = self.inserted + self.failed
        return self.inserted / valid if valid else 1.0


@dataclass
class FaultSummary:
    """A fault injected during the run, its window in seconds from the start (no end: all run
    long), and the records in flight on its database meanwhile, by model and outcome."""

    spec: str
    description: str
    alias: str
    kind: str
    start_seconds: float
    end_seconds: float | None
    touched: dict[str, dict[str, int]] = field(default_factory=dict)
    # when it really held (UTC), or why it could not be injected
    applied_at: str | None = None
    removed_at: str | None = None
    error: str | None = None

    @property
    def not_reached(self) -> bool:
        """The run ended before the fault's start: it never held."""
        return self.applied_at is None and self.error is None

    @property
    def touched_total(self) -> int:
        return sum(sum(outcomes.values()) for outcomes in self.touched.values())


@dataclass
class SliceAttemptSummary:
    """One attempt at one slice of a spread run: where it ran and what became of it."""

    phase: int  # 1: users and products, 2: orders
    slice: int  # from 1
    attempt: int
    executor: str  # host:pid, empty when no executor took it
    state: str  # finished, or abandoned (given up: see reason)
    # committed by it: from its tally once finished, from its last heartbeat when abandoned
    inserted: int = 0
    # records an earlier attempt had committed, found by their identity and counted once
    found_committed: int = 0
    wall_seconds: float = 0.0
    # why it was abandoned: its heartbeat stopped, its executor's error, the run was stopped
    reason: str = ""


@dataclass
class ExecutorThreads:
    """One model's threads that ran on one executor of a spread run, added up."""

    model: str
    executor: str  # host:pid, "unknown" when no finished attempt names it
    threads: int
    handled: int
    inserted: int
    rejected: int
    failed: int
    mean_latency_ms: float


@dataclass
class ExecutorSummary:
    """A process or Celery worker of a spread run: the attempts it finished and their rows."""

    executor: str
    attempts: int
    inserted: int
    wall_seconds: float  # the time its attempts ran, added up
    rows_per_second: float


@dataclass
class ScaleOutSummary:
    """How a run was spread: over local processes or Celery workers, in slices."""

    transport: str  # "processes" or "Celery workers"
    slices: int
    executors: list[ExecutorSummary] = field(default_factory=list)
    attempts: list[SliceAttemptSummary] = field(default_factory=list)
    # slices that never finished, each with why ("phase 1 slice 3: ...")
    unfinished: list[str] = field(default_factory=list)

    def redone_slices(self) -> list[list[SliceAttemptSummary]]:
        """Each slice tried more than once, its attempts in order."""
        by_slice: dict[tuple[int, int], list[SliceAttemptSummary]] = {}
        for attempt in self.attempts:
            by_slice.setdefault((attempt.phase, attempt.slice), []).append(attempt)
        return [
            sorted(attempts, key=lambda attempt: attempt.attempt)
            for _slice, attempts in sorted(by_slice.items())
            if len(attempts) > 1
        ]

    def executor_of(self, phase: int, slice_number: int) -> str | None:
        """The executor whose attempt finished the slice in that phase (None: none did)."""
        for attempt in self.attempts:
            if (attempt.phase, attempt.slice, attempt.state) == (phase, slice_number, "finished"):
                return attempt.executor
        return None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ScaleOutSummary":
        return cls(
            transport=data["transport"],
            slices=data["slices"],
            executors=[ExecutorSummary(**e) for e in data.get("executors", [])],
            attempts=[SliceAttemptSummary(**a) for a in data.get("attempts", [])],
            unfinished=data.get("unfinished", []),
        )


@dataclass
class CacheSummary:
    """One model's existence checks through the shared cache: ids it vouched for (hits), ids
    asked of the database after it (misses) or instead of it (errors: unreachable), and the
    time saved: hits x this run's mean database lookup per id, less the time the cache took."""

    model: str
    hits: int
    misses: int
    errors: int
    database_ms_per_id: float
    cache_ms: float

    @property
    def hit_ratio(self) -> float:
        asked = self.hits + self.misses
        return self.hits / asked if asked else 0.0

    @property
    def saved_ms(self) -> float:
        """Database time the hits spared, less the time spent asking the cache (negative when
        the cache costs more than it saves)."""
        return self.hits * self.database_ms_per_id - self.cache_ms


@dataclass(frozen=True)
class Problem:
    message: str
    exit_code: int


@dataclass
class RunSummary:
    run_id: str
    started_at: str
    duration_seconds: float
    config: dict[str, Any]
    environment: dict[str, str]
    databases: dict[str, dict[str, str]]
    models: dict[str, ModelSummary]
    interrupted: bool = False
    # the console or --details could not be written (the run itself went on)
    output_error: str | None = None
    faults: list[FaultSummary] = field(default_factory=list)
    # a run spread over processes or Celery workers (None: one process)
    scale_out: ScaleOutSummary | None = None
    # the order checks through the shared cache, per model (empty: no DS_CACHE_URL)
    reference_cache: list[CacheSummary] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """What went wrong without failing the run."""
        unreachable = sum(cache.errors for cache in self.reference_cache)
        if unreachable:
            return [f"cache unreachable: {unreachable:,} checks went to the database"]
        return []

    @property
    def failed(self) -> int:
        return sum(m.failed for m in self.models.values())

    @property
    def reconciled(self) -> bool:
        return all(m.reconciled for m in self.models.values())

    def threads_by_executor(self) -> list[ExecutorThreads]:
        """A spread run's threads added up per model and executor (empty for a one-process
        run): each thread's slice is in its name, and the slice's executor is the one that
        finished it in the model's phase. The mean latency is the threads' weighted by the
        records they handled."""
        if self.scale_out is None:
            return []
        grouped: dict[tuple[str, str], ExecutorThreads] = {}
        for model in self.models.values():
            for thread in model.threads:
                match = SLICE_PREFIX.match(thread.thread)
                slice_number = int(match.group(1)) if match else 1  # one slice: no prefix
                phase = MODEL_PHASES.get(model.model, 1)
                executor = self.scale_out.executor_of(phase, slice_number) or "unknown"
                group = grouped.setdefault(
                    (model.model, executor),
                    ExecutorThreads(model.model, executor, 0, 0, 0, 0, 0, 0.0),
                )
                group.threads += 1
                group.handled += thread.handled
                group.inserted += thread.inserted
                group.rejected += thread.rejected
                group.failed += thread.failed
                # the latency added up until the end, then divided by the records handled
                group.mean_latency_ms += thread.mean_latency_ms * thread.handled
        for group in grouped.values():
            group.mean_latency_ms = (
                round(group.mean_latency_ms / group.handled, 3) if group.handled else 0.0
            )
        return list(grouped.values())

    @property
    def unattempted(self) -> int:
        """Records of the run that never got a verdict (only an interrupted run has any)."""
        return sum(max(0, self.config["records"] - m.attempted) for m in self.models.values())

    @property
    def problems(self) -> list["Problem"]:
        """Why the run did not pass, each with the exit status it calls for; empty when every
        record got a verdict, none failed, the rows add up and the output was written."""
        problems = []
        for fault in self.faults:
            if fault.error:
                problems.append(Problem(f"fault {fault.spec} was not injected: {fault.error}", 1))
        for unfinished in self.scale_out.unfinished if self.scale_out else ():
            problems.append(Problem(f"{unfinished}", 1))
        if self.output_error:
            problems.append(
                Problem(f"the run's output could not be written ({self.output_error})", 1)
            )
        if self.interrupted:
            problems.append(
                Problem(
                    "the run was interrupted: the counts are what was committed before the stop",
                    INTERRUPTED_EXIT_CODE,
                )
            )
        if self.failed:
            problems.append(Problem(f"{self.failed:,} valid records failed to commit", 1))
        if self.unattempted:
            problems.append(Problem(f"{self.unattempted:,} records never got a verdict", 1))
        if not self.reconciled:
            problems.append(
                Problem("the rows counted in the databases do not reconcile with 'inserted'", 1)
            )
        return problems

    @property
    def verdict(self) -> str:
        """The verdict in one line, as the PDF and the command's error show it."""
        problems = self.problems
        if not problems:
            return (
                "PASS: every valid record was committed and the rows counted in each database "
                "reconcile with 'inserted'."
            )
        return "FAIL: " + "; ".join(problem.message for problem in problems) + "."

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        """0 when the run passed; else the most telling status among its problems (130 for an
        interrupted run, 1 otherwise)."""
        return max((problem.exit_code for problem in self.problems), default=0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = data.pop("models")
        for name, model in data["summary"].items():
            # A model in one database keeps the JSON it always had.
            if not model["database_rows"]:
                del model["database_rows"]
            else:
                model["skew"] = round(self.models[name].skew or 0.0, 4)
        data["ok"] = self.ok
        data["warnings"] = self.warnings  # derived from reference_cache
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSummary":
        models = {}
        for name, raw in data["summary"].items():
            raw = dict(raw)
            raw["latency_ms"] = LatencySummary(**raw["latency_ms"])
            raw["threads"] = [ThreadSummary(**t) for t in raw.get("threads", [])]
            raw["reasons"] = [ReasonCount(**r) for r in raw.get("reasons", [])]
            raw["records"] = [RecordDetail(**r) for r in raw.get("records", [])]
            raw.pop("skew", None)  # derived from database_rows
            raw["database_rows"] = [DatabaseRows(**d) for d in raw.get("database_rows", [])]
            models[name] = ModelSummary(**raw)
        return cls(
            run_id=data["run_id"],
            started_at=data["started_at"],
            duration_seconds=data["duration_seconds"],
            config=data["config"],
            environment=data["environment"],
            databases=data["databases"],
            models=models,
            interrupted=data.get("interrupted", False),
            output_error=data.get("output_error"),
            faults=[FaultSummary(**fault) for fault in data.get("faults", [])],
            scale_out=(
                ScaleOutSummary.from_dict(data["scale_out"]) if data.get("scale_out") else None
            ),
            reference_cache=[CacheSummary(**cache) for cache in data.get("reference_cache", [])],
        )
