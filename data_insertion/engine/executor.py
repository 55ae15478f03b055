"""One attempt at one slice of a spread run, carried out where it was sent: a local process of
the run (engine/processes.py) or a Celery worker on any machine (data_insertion/tasks.py).

The attempt is taken with an UPDATE only one executor can win, so a message delivered twice
runs once; while it runs, a heartbeat thread counts its beats and writes its progress in the
default database, and learns there that the run was stopped or that the coordinator gave the
slice to another attempt (then it stops too). At its end it leaves its tally, if the attempt is
still its own.
"""

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from django.db import DatabaseError, connections
from django.db.models import F
from django.utils import timezone

from .. import reference_cache
from ..runs.models import AttemptState, SliceAttempt, SpreadRun
from ..tallies import RunTally
from ..topology.breakers import reset_breakers
from .committers import commit_strategy
from .config import Slice
from .faults import acts_in_each_process, injected
from .run import PHASES, RunPlan, references_from_wire, run_phase
from .workers import start_thread

HEARTBEAT_SECONDS = 0.5
BARRIER_TIMEOUT_SECONDS = 10.0


def executor_name() -> str:
    """Where an attempt runs, as the summary shows it: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def execute_attempt(attempt_id: int, barrier: Any = None) -> str:
    """Run the attempt if it is still queued; what became of it, in a word (for logs).
    `barrier`: a local run's processes wait on it so that their slices start together."""
    claimed = SliceAttempt.objects.filter(
        pk=attempt_id, state=AttemptState.QUEUED, run__stop_requested=False
    ).update(state=AttemptState.RUNNING, executor=executor_name(), started_at=timezone.now())
    if not claimed:
        return "not queued"  # taken, abandoned or finished: a redelivered message
    attempt = SliceAttempt.objects.select_related("run").get(pk=attempt_id)
    spread_run: SpreadRun = attempt.run
    plan = RunPlan.from_wire(spread_run.plan)
    models = PHASES[attempt.phase - 1]
    references = references_from_wire(spread_run.references) if attempt.phase == 2 else None
    tally = RunTally(plan.run_started, plan.config.faults)
    stop = threading.Event()
    reset_breakers()
    strategy = commit_strategy(plan.config, tally.add_all)
    in_process = tuple(fault for fault in plan.config.faults if acts_in_each_process(fault))
    connections.close_all()
    reference_cache.take_counts()  # the shared cache's counts start with the attempt
    try:
        with (
            injected(in_process, plan.run_started) as fault_records,
            _beating(attempt_id, tally, models, stop),
        ):
            slice_ = Slice(attempt.slice_number, spread_run.slice_count)
            for number, model in enumerate(_one_after_the_other(models, slice_)):
                release = barrier is not None and number == 0
                run_phase(
                    plan,
                    (model,),
                    slice_,
                    strategy,
                    stop,
                    references,
                    ready=(lambda: _wait_for_the_others(barrier, attempt.phase))
                    if release
                    else None,
                )
    except Exception as error:  # a thread refused, a bug: the coordinator redoes the slice
        SliceAttempt.objects.filter(pk=attempt_id, state=AttemptState.RUNNING).update(
            state=AttemptState.ABANDONED,
            error=f"{executor_name()}: {type(error).__name__}: {error}",
        )
        connections.close_all()
        return "failed"
    if "order" in models:
        tally.models["order"].add_cache_counts(reference_cache.take_counts())
    finished = SliceAttempt.objects.filter(pk=attempt_id, state=AttemptState.RUNNING).update(
        state=AttemptState.FINISHED,
        finished_at=timezone.now(),
        tally=tally.to_wire(models),
        interrupted=stop.is_set(),
        fault_records={spec: asdict(record) for spec, record in fault_records.items()},
    )
    connections.close_all()
    return "finished" if finished else "abandoned"


def _one_after_the_other(models: tuple[str, ...], slice_: Slice) -> tuple[str, ...]:
    """A slice takes its phase's models one after the other, every other slice in the reverse
    order: while one process writes users.db another writes products.db, where taking both at
    once had every process wait for the same two writers. SQLite takes one writer per file,
    and a writer holding it waits for its process's interpreter lock between statements: two
    processes on the same files finished the run 1.3x faster than one, two independent ones on
    separate files 2.1x (README, Performance)."""
    return models if slice_.number % 2 == 0 else models[::-1]


@contextmanager
def _beating(
    attempt_id: int, tally: RunTally, models: tuple[str, ...], stop: threading.Event
) -> Iterator[None]:
    """A heartbeat while the block runs; `stop` is set when the run is stopped or the attempt
    was abandoned."""
    ended = threading.Event()

    def beat() -> None:
        while not ended.wait(HEARTBEAT_SECONDS):
            try:
                alive = SliceAttempt.objects.filter(
                    pk=attempt_id, state=AttemptState.RUNNING, run__stop_requested=False
                ).update(beats=F("beats") + 1, progress=_progress(tally, models))
            except DatabaseError:
                continue  # the default database is busy: the next beat tries again
            if not alive:
                stop.set()

    thread = start_thread(beat, name="slice-heartbeat", daemon=True)
    try:
        yield
    finally:
        ended.set()
        thread.join()


def _progress(tally: RunTally, models: tuple[str, ...]) -> dict[str, Any]:
    progress = {}
    for model in models:
        counts, histogram, by_database = tally.models[model].progress()
        progress[model] = {
            "counts": counts,
            "histogram": histogram.to_wire(),
            "by_database": by_database,
        }
    return progress


def _wait_for_the_others(barrier: Any, phase: int) -> None:
    """Local processes start their slices together; one that is late (or dead) delays the
    others at most BARRIER_TIMEOUT_SECONDS."""
    barrier.wait(phase, BARRIER_TIMEOUT_SECONDS)
