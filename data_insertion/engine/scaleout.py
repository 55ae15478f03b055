"""A run spread over local processes (--processes) or Celery workers (--celery): the coordinator.

The run is planned here as in one process, then cut into slices (config.Slice). For each phase
(users and products, then orders that reference them) the coordinator queues an attempt per
slice in the default database and hands it to the transport (engine/processes.py or
data_insertion/tasks.py); executors run attempts (engine/executor.py) and leave their tallies,
which merge here into the run's tally; summarise() then makes the summary a one-process run
would have, with the slices, their attempts and the executors added.

Executors' deaths are found by their heartbeats: an attempt whose beats stop for
settings.SLICE_HEARTBEAT_TIMEOUT_SECONDS (DS_SLICE_HEARTBEAT_TIMEOUT, 10 s) is abandoned and
the slice queued again, up to MAX_ATTEMPTS; records carry their identity
(data_insertion/identity.py), so the new attempt counts what the dead one committed instead of
inserting it twice. A slice no executor takes within settings.SLICE_QUEUE_TIMEOUT_SECONDS
(DS_SLICE_QUEUE_TIMEOUT, 60 s), or that fails MAX_ATTEMPTS times, is reported and makes the run
fail: it never hangs.
"""

import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from django.conf import settings
from django.db import connections
from django.db.models import Q

from ..histogram import LatencyHistogram
from ..housekeeping import count_rows, empty_databases
from ..identity import MAX_RUN_NUMBER, MAX_SLICES
from ..results import Status
from ..runs.models import AttemptState, SliceAttempt, SpreadRun
from ..summary import (
    ExecutorSummary,
    RunSummary,
    ScaleOutSummary,
    SliceAttemptSummary,
)
from ..tallies import RunTally
from .config import SimulationConfig
from .faults import FaultRecord, acts_in_each_process, injected
from .processes import LocalProcesses
from .progress import ProgressCallback, sampling_progress
from .run import PHASES, find_references, plan_run, references_to_wire, summarise
from .workers import SimulationError

MAX_ATTEMPTS = 3
# How often the coordinator looks at the attempts when no executor tells it that one ended.
POLL_SECONDS = 0.1


class Transport(AbstractContextManager, Protocol):
    """Where attempts run. Entering it makes its executors ready; leaving it lets them go."""

    name: str

    def submit(self, attempt_id: int, first: bool) -> None:
        """Have an executor run the attempt; `first`: the slice's first attempt of a phase,
        released together with the phase's other slices where the transport can."""

    def maintain(self) -> bool:
        """Called while the coordinator waits: keep the executors going. True when a dead one
        was replaced: an attempt it had taken but not claimed must be sent again."""

    def wait(self, seconds: float) -> None:
        """Return after `seconds`, or sooner once an executor has ended an attempt."""


@dataclass
class _Slice:
    """The coordinator's view of one slice in the current phase."""

    number: int
    attempt_id: int
    attempt: int = 1
    beats: int = -1
    last_change: float = field(default_factory=time.monotonic)
    progress: dict[str, Any] | None = None
    done: bool = False
    state: str = AttemptState.QUEUED  # as last seen


def run_spread(
    config: SimulationConfig,
    stop: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunSummary:
    """Run the simulation over local processes or Celery workers, as the config says."""
    if config.celery:
        from ..tasks import CeleryWorkers  # Celery is loaded only by runs that use it

        transport: Transport = CeleryWorkers()
        slice_count = config.slices or transport.default_slices()
    else:
        slice_count = config.slices or config.processes
        transport = LocalProcesses(config.processes, slice_count)
    return run_spread_over(transport, slice_count, config, stop, on_progress)


def run_spread_over(
    transport: Transport,
    slice_count: int,
    config: SimulationConfig,
    stop: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunSummary:
    """Run the simulation over the transport's executors in `slice_count` slices."""
    stop = stop or threading.Event()
    if not 1 <= slice_count <= MAX_SLICES:
        raise SimulationError(f"{slice_count} slices: a run takes 1..{MAX_SLICES:,}")
    if config.fresh:
        empty_databases()
    rows_before = count_rows()
    plan = plan_run(config)
    spread_run = SpreadRun.objects.create(
        engine_run_id=plan.run_id, plan={}, slice_count=slice_count
    )
    if spread_run.pk > MAX_RUN_NUMBER:
        raise SimulationError(f"run number {spread_run.pk} is beyond {MAX_RUN_NUMBER:,}")
    plan = replace(plan, run_number=spread_run.pk)
    SpreadRun.objects.filter(pk=spread_run.pk).update(plan=plan.to_wire())
    tally = RunTally(plan.run_started, config.faults)
    live = _LiveTally(tally)
    coordinator = _Coordinator(spread_run, transport, tally, live, stop)
    # A lock, or a server's outage, acts on every process from here; the other faults each
    # executor applies to itself (executor.py).
    across_processes = tuple(f for f in config.faults if not acts_in_each_process(f))
    connections.close_all()  # nothing of this process's crosses into its executors
    with (
        transport,
        injected(across_processes, plan.run_started) as fault_records,
        sampling_progress(live, plan.run_started, on_progress),
    ):
        for phase, models in enumerate(PHASES, start=1):
            if phase == 2:
                references = find_references(tally)
                SpreadRun.objects.filter(pk=spread_run.pk).update(
                    references=references_to_wire(references)
                )
            if stop.is_set():
                break  # stopped: no phase starts after the stop, as in one process
            coordinator.run_phase(phase, models)
            if coordinator.unfinished:
                break  # orders need every user and product of phase 1 judged
    summary = summarise(
        plan,
        tally,
        rows_before,
        interrupted=stop.is_set() or coordinator.interrupted,
        fault_records={**coordinator.fault_records, **fault_records},
    )
    summary.scale_out = coordinator.summary(transport.name)
    # The tallies and references served their purpose (megabytes for a large run): the run's
    # summary is what stays.
    SpreadRun.objects.filter(pk=spread_run.pk).update(finished=True, references=None)
    SliceAttempt.objects.filter(run=spread_run).update(tally=None, progress=None)
    return summary


class _Coordinator:
    def __init__(
        self,
        spread_run: SpreadRun,
        transport: Transport,
        tally: RunTally,
        live: "_LiveTally",
        stop: threading.Event,
    ) -> None:
        self.spread_run = spread_run
        self.transport = transport
        self.tally = tally
        self.live = live
        self.stop = stop
        self.stop_sent = False
        self.interrupted = False
        self.unfinished: list[str] = []
        self.attempts: list[SliceAttemptSummary] = []
        self.last_activity = time.monotonic()  # an executor's last beat or finish
        # Faults the executors applied themselves: held from the first to apply it to the
        # last to remove it
        self.fault_records: dict[str, FaultRecord] = {}

    def run_phase(self, phase: int, models: tuple[str, ...]) -> None:
        """Queue an attempt per slice and wait until every slice has finished or is given up."""
        slices = {
            number: _Slice(number, self._queue(phase, number, 1))
            for number in range(self.spread_run.slice_count)
        }
        for slice_ in slices.values():
            self.transport.submit(slice_.attempt_id, first=True)
        self.live.watch(slices.values())
        while not all(slice_.done for slice_ in slices.values()):
            self.transport.wait(POLL_SECONDS)
            if self.stop.is_set() and not self.stop_sent:
                SpreadRun.objects.filter(pk=self.spread_run.pk).update(stop_requested=True)
                self.stop_sent = True
            if self.transport.maintain():
                for slice_ in slices.values():
                    if not slice_.done and slice_.state == AttemptState.QUEUED:
                        self.transport.submit(slice_.attempt_id, first=False)
            self._look(phase, [slice_ for slice_ in slices.values() if not slice_.done])
        self.live.watch(())

    def _look(self, phase: int, pending: list[_Slice]) -> None:
        by_id = {slice_.attempt_id: slice_ for slice_ in pending}
        rows = SliceAttempt.objects.filter(pk__in=by_id).values(
            "pk", "state", "beats", "progress", "executor", "error"
        )
        now = time.monotonic()
        rows = list(rows)
        # A queued slice waits while executors are busy with others: its wait counts only
        # from the last sign that any executor of the run was at work.
        if any(
            row["state"] == AttemptState.FINISHED
            or (row["state"] == AttemptState.RUNNING and row["beats"] != by_id[row["pk"]].beats)
            for row in rows
        ):
            self.last_activity = now
        for row in rows:
            slice_ = by_id[row["pk"]]
            slice_.state = row["state"]
            if row["state"] == AttemptState.FINISHED:
                self._finished(slice_, row["pk"])
            elif row["state"] == AttemptState.RUNNING:
                if row["beats"] != slice_.beats:
                    slice_.beats, slice_.last_change = row["beats"], now
                    slice_.progress = row["progress"]
                elif now - slice_.last_change > settings.SLICE_HEARTBEAT_TIMEOUT_SECONDS:
                    why = (
                        f"its executor {row['executor']} stopped beating for "
                        f"{settings.SLICE_HEARTBEAT_TIMEOUT_SECONDS:g} s"
                    )
                    self._abandon(phase, slice_, AttemptState.RUNNING, why)
            elif row["state"] == AttemptState.ABANDONED:  # its executor gave it up
                self._abandon(phase, slice_, AttemptState.ABANDONED, row["error"])
            elif row["state"] == AttemptState.QUEUED:
                if self.stop.is_set():
                    self._abandon(phase, slice_, AttemptState.QUEUED, "the run was stopped")
                elif (
                    now - max(slice_.last_change, self.last_activity)
                    > settings.SLICE_QUEUE_TIMEOUT_SECONDS
                ):
                    why = (
                        f"no executor took it within {settings.SLICE_QUEUE_TIMEOUT_SECONDS:g} s "
                        f"(are the {self.transport.name} running?)"
                    )
                    self._abandon(phase, slice_, AttemptState.QUEUED, why)
        self.live.refresh()

    def _finished(self, slice_: _Slice, attempt_id: int) -> None:
        attempt = SliceAttempt.objects.get(pk=attempt_id)
        self.tally.add_wire(attempt.tally)
        for spec, held in (attempt.fault_records or {}).items():
            self._add_fault_record(spec, FaultRecord(**held))
        self.interrupted |= attempt.interrupted
        slice_.done = True
        slice_.progress = None
        self.attempts.append(_attempt_summary(attempt))

    def _add_fault_record(self, spec: str, held: FaultRecord) -> None:
        record = self.fault_records.setdefault(spec, FaultRecord())
        if held.applied_at and (record.applied_at is None or held.applied_at < record.applied_at):
            record.applied_at = held.applied_at
        if held.removed_at and (record.removed_at is None or held.removed_at > record.removed_at):
            record.removed_at = held.removed_at
        record.error = record.error or held.error

    def _abandon(self, phase: int, slice_: _Slice, state: str, why: str) -> None:
        """Give the attempt up (unless it changed state meanwhile) and queue the next one, or
        give the slice up after MAX_ATTEMPTS (or once the run is stopped)."""
        gave_up = SliceAttempt.objects.filter(Q(pk=slice_.attempt_id) & Q(state=state)).update(
            state=AttemptState.ABANDONED, error=why
        )
        if not gave_up:
            return  # it moved on (finished, or was taken): the next look sees it
        self.attempts.append(_attempt_summary(SliceAttempt.objects.get(pk=slice_.attempt_id)))
        slice_.progress = None
        if self.stop.is_set():
            slice_.done = True
            return
        if slice_.attempt >= MAX_ATTEMPTS or state == AttemptState.QUEUED:
            self.unfinished.append(
                f"phase {phase} slice {slice_.number + 1} did not finish: {why}"
                + (f" (attempt {slice_.attempt} of {MAX_ATTEMPTS})" if slice_.attempt > 1 else "")
            )
            slice_.done = True
            return
        slice_.attempt += 1
        slice_.attempt_id = self._queue(phase, slice_.number, slice_.attempt)
        slice_.beats, slice_.last_change = -1, time.monotonic()
        slice_.state = AttemptState.QUEUED
        self.transport.submit(slice_.attempt_id, first=False)

    def _queue(self, phase: int, number: int, attempt: int) -> int:
        return SliceAttempt.objects.create(
            run=self.spread_run, phase=phase, slice_number=number, attempt=attempt
        ).pk

    def summary(self, transport: str) -> ScaleOutSummary:
        executors: dict[str, ExecutorSummary] = {}
        for attempt in self.attempts:
            if attempt.state != AttemptState.FINISHED:
                continue
            executor = executors.setdefault(
                attempt.executor, ExecutorSummary(attempt.executor, 0, 0, 0.0, 0.0)
            )
            executor.attempts += 1
            executor.inserted += attempt.inserted
            executor.wall_seconds = round(executor.wall_seconds + attempt.wall_seconds, 4)
        for executor in executors.values():
            if executor.wall_seconds:
                executor.rows_per_second = round(executor.inserted / executor.wall_seconds, 1)
        return ScaleOutSummary(
            transport=transport,
            slices=self.spread_run.slice_count,
            executors=sorted(executors.values(), key=lambda e: e.executor),
            attempts=sorted(self.attempts, key=lambda a: (a.phase, a.slice, a.attempt)),
            unfinished=self.unfinished,
        )


def _attempt_summary(attempt: SliceAttempt) -> SliceAttemptSummary:
    tallies = (attempt.tally or {}).values()
    # An abandoned attempt's tally never came: its last heartbeat says what it had committed.
    counted = tallies or (attempt.progress or {}).values()
    inserted = sum(model["counts"].get(Status.INSERTED, 0) for model in counted)
    found = sum(model["found_committed"] for model in tallies)
    starts = [model["first_started"] for model in tallies if model["first_started"] is not None]
    ends = [model["last_finished"] for model in tallies if model["last_finished"] is not None]
    return SliceAttemptSummary(
        phase=attempt.phase,
        slice=attempt.slice_number + 1,
        attempt=attempt.attempt,
        executor=attempt.executor,
        state=attempt.state,
        inserted=inserted,
        found_committed=found,
        wall_seconds=round(max(ends) - min(starts), 4) if starts else 0.0,
        reason=attempt.error,
    )


class _LiveModel:
    """One model's progress across executors: finished slices' tally plus running attempts'
    latest heartbeats (what the progress sampler reads, as it reads a ModelTally)."""

    def __init__(self, live: "_LiveTally", model: str) -> None:
        self.live = live
        self.model = model

    def progress(self) -> tuple[dict[str, int], LatencyHistogram, dict[str, int]]:
        counts, histogram, by_database = self.live.tally.models[self.model].progress()
        for progress in self.live.running_progress():
            reported = progress.get(self.model)
            if reported is None:
                continue
            for status, count in reported["counts"].items():
                counts[status] = counts.get(status, 0) + count
            histogram.merge(LatencyHistogram.from_wire(reported["histogram"]))
            for alias, rows in reported["by_database"].items():
                by_database[alias] = by_database.get(alias, 0) + rows
        return counts, histogram, by_database


class _LiveTally:
    def __init__(self, tally: RunTally) -> None:
        self.tally = tally
        self.models = {model: _LiveModel(self, model) for model in tally.models}
        self._slices: list[_Slice] = []
        self._progress: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def watch(self, slices) -> None:
        with self._lock:
            self._slices = list(slices)
            self._progress = []

    def refresh(self) -> None:
        """Take the running attempts' latest progress (from the coordinator's thread)."""
        with self._lock:
            self._progress = [s.progress for s in self._slices if s.progress and not s.done]

    def running_progress(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._progress)
