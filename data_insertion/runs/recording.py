"""Recording runs: each run a row, its progress snapshots rows, its summary once finished.

record_run() wraps the engine's run_simulation() for every caller (the insert_data command, a
background run started from the dashboard or the API). Snapshots are kept bounded: past
MAX_SNAPSHOTS, every other stored one is dropped and the recorder keeps one in two from then
on, so a run of any length stays a few hundred rows and its page a few hundred points.
"""

import os
import platform
import socket
import sys
import threading
from dataclasses import asdict

import django
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from ..engine import SimulationConfig, run_simulation
from ..engine.launcher import start_background_process, start_background_thread
from ..engine.progress import ProgressSnapshot
from ..housekeeping import DatabaseUnavailable, migrate_databases
from ..summary import RunSummary
from .models import Run, RunSnapshot, RunSource, RunStatus

MAX_SNAPSHOTS = 600


def create_run(config: SimulationConfig, source: RunSource) -> Run:
    """A queued run, recorded before anything starts."""
    return Run.objects.create(source=source, config=asdict(config), status=RunStatus.QUEUED)


def run_config(run: Run) -> SimulationConfig:
    """The run's options as recorded (JSON: its faults as plain objects)."""
    return SimulationConfig.from_dict(run.config)


class RunRecorder:
    """Writes a run's snapshots as they come (from the engine's sampler thread) and asks the
    engine to stop when someone has asked for it (the stop flag is read once a snapshot)."""

    def __init__(self, run: Run, stop: threading.Event, max_snapshots: int = MAX_SNAPSHOTS):
        self.run = run
        self.stop = stop
        self.max_snapshots = max_snapshots
        self.keep_every = 1
        self.stored = 0

    def record_snapshot(self, snapshot: ProgressSnapshot) -> None:
        data = asdict(snapshot)
        try:
            with transaction.atomic():
                Run.objects.filter(pk=self.run.pk).update(
                    progress=data, heartbeat_at=timezone.now()
                )
                if snapshot.sequence % self.keep_every == 0:
                    RunSnapshot.objects.create(run=self.run, sequence=snapshot.sequence, data=data)
                    self.stored += 1
                    if self.stored > self.max_snapshots:
                        self._thin_out()
            if Run.objects.filter(pk=self.run.pk, stop_requested=True).exists():
                self.stop.set()
        except DatabaseError:
            # A snapshot is a view of the run, not part of it: the run goes on without it.
            pass

    def _thin_out(self) -> None:
        sequences = list(
            RunSnapshot.objects.filter(run=self.run).values_list("sequence", flat=True)
        )
        dropped = sequences[1::2]
        RunSnapshot.objects.filter(run=self.run, sequence__in=dropped).delete()
        self.stored -= len(dropped)
        self.keep_every *= 2


def record_run(
    config: SimulationConfig,
    *,
    source: RunSource,
    run: Run | None = None,
    on_result=None,
    stop: threading.Event | None = None,
    on_progress=None,
) -> RunSummary:
    """Run the simulation as run_simulation() does, recording it: a new run row (or `run`, a
    queued one), its snapshots (also handed to `on_progress`), and at the end its summary and
    status. Whatever stops the run
    (an error, Ctrl-C) is recorded before it goes on up."""
    stop = stop or threading.Event()
    run = run or create_run(config, source)
    run.status = RunStatus.RUNNING
    run.started_at = run.heartbeat_at = timezone.now()
    run.environment = _environment()
    run.save(update_fields=["status", "started_at", "heartbeat_at", "environment"])
    if Run.objects.filter(pk=run.pk, stop_requested=True).exists():
        stop.set()
    recorder = RunRecorder(run, stop)

    def progress(snapshot: ProgressSnapshot) -> None:
        recorder.record_snapshot(snapshot)
        if on_progress is not None:
            on_progress(snapshot)

    try:
        summary = run_simulation(config, on_result=on_result, stop=stop, on_progress=progress)
    except BaseException as error:
        _finish(run, RunStatus.FAILED, error=str(error) or type(error).__name__)
        raise
    _finish(
        run,
        RunStatus.INTERRUPTED if summary.interrupted else RunStatus.COMPLETED,
        summary=summary,
    )
    return summary


def execute_run(run_id: int) -> None:
    """Carry out a queued run (in a background process or thread): migrate, run, record."""
    run = Run.objects.get(pk=run_id)
    if run.stop_requested:
        _finish(run, RunStatus.INTERRUPTED, error="stopped before it started")
        return
    try:
        migrate_databases()
    except DatabaseUnavailable as error:
        _finish(run, RunStatus.FAILED, error=f"cannot use {error}")
        return
    record_run(run_config(run), source=run.source, run=run)


def start_run(config: SimulationConfig, source: RunSource) -> Run:
    """Record a queued run and start it outside the request: a background process running
    `manage.py execute_run ID` (settings.RUN_EXECUTOR "process", the default), or a thread of
    this process ("thread")."""
    run = create_run(config, source)
    if settings.RUN_EXECUTOR == "thread":
        start_background_thread(lambda: execute_run(run.pk), name=f"run-{run.pk}")
    else:
        start_background_process(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "execute_run", str(run.pk)],
            on_exit=lambda returncode, stderr: _process_exited(run.pk, returncode, stderr),
            name=f"run-{run.pk}",
        )
    return run


def request_stop(run: Run) -> Run:
    """Ask a run to stop: its recorder sees the flag within a second, wherever it runs; a
    queued run never starts."""
    Run.objects.filter(pk=run.pk).update(stop_requested=True)
    run.refresh_from_db()
    return run


def summary_of(run: Run) -> RunSummary | None:
    return RunSummary.from_dict(run.summary) if run.summary is not None else None


def _finish(
    run: Run, status: RunStatus, summary: RunSummary | None = None, error: str = ""
) -> None:
    fields = {"status": status, "finished_at": timezone.now(), "error": error}
    if summary is not None:
        fields |= {
            "summary": summary.to_dict(),
            "engine_run_id": summary.run_id,
            "rows_per_second": _rows_per_second(summary),
            "p95_ms": max((m.latency_ms.p95 for m in summary.models.values()), default=None),
            "verdict": summary.verdict,
            "passed": summary.ok,
        }
    Run.objects.filter(pk=run.pk).update(**fields)


def _rows_per_second(summary: RunSummary) -> float:
    """Rows committed per second of the run, all models together."""
    inserted = sum(model.inserted for model in summary.models.values())
    return round(inserted / summary.duration_seconds, 1) if summary.duration_seconds else 0.0


def _process_exited(run_id: int, returncode: int, stderr: str) -> None:
    """A background process that died before recording its end (killed, a crash at start)."""
    if returncode != 0:
        Run.objects.filter(pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
            status=RunStatus.FAILED,
            finished_at=timezone.now(),
            error=stderr.strip() or f"the run's process exited with status {returncode}",
        )


def _environment() -> dict[str, str | int]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "django": django.get_version(),
    }
