"""The benchmark's processes axis: whole `insert_data` processes, as a user runs them, spread over
1, 2, ... local processes or over two local Celery workers, each on fresh SQLite files in a
temporary directory. Whole processes, because that is what scaling out buys: the interpreter's
start-up, the checks and the reconciliation are counted, as they are for the user.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from django.conf import settings

from . import ModeResult

CELERY_WORKERS = 2
CELERY_SLICES_PER_WORKER = 2
WORKER_START_TIMEOUT_SECONDS = 60.0


def measure_processes(
    *,
    process_counts: tuple[int, ...],
    threads: int,
    records: int,
    batch_size: int,
    seed: int,
    celery_broker: str | None,
    on_result: Callable[[ModeResult], None] | None = None,
) -> list[ModeResult]:
    """insert_data with --processes N for each N, one transaction per record and group commit;
    then, with a broker, group commit over two local Celery workers."""
    common = [
        "--threads", str(threads), "--records", str(records), "--seed", str(seed),
        "--invalid-ratio", "0",
    ]  # fmt: skip
    runs = [
        (f"{count} process{'es' if count > 1 else ''}, {mode}", ["--processes", str(count)] + extra)
        for mode, extra in (
            ("one transaction per record", []),
            (f"group commit (batch {batch_size})", ["--batch-size", str(batch_size)]),
        )
        for count in process_counts
    ]
    results = []
    for name, options in runs:
        with tempfile.TemporaryDirectory(prefix="ds-benchmark-") as directory:
            _migrate(Path(directory))
            result = _whole_run(name, Path(directory), common + options)
        results.append(result)
        if on_result:
            on_result(result)
    if celery_broker:
        slices = CELERY_WORKERS * CELERY_SLICES_PER_WORKER
        with tempfile.TemporaryDirectory(prefix="ds-benchmark-") as directory:
            queue = f"benchmark-{uuid.uuid4().hex[:8]}"
            env = {"DS_CELERY_BROKER_URL": celery_broker, "DS_CELERY_QUEUE": queue}
            _migrate(Path(directory), env)
            with _celery_workers(Path(directory), env):
                result = _whole_run(
                    f"Celery {CELERY_WORKERS} local workers, group commit (batch {batch_size})",
                    Path(directory),
                    common + ["--celery", "--slices", str(slices), "--batch-size", str(batch_size)],
                    env,
                )
            # The workers are not the command's children: their CPU time is not in its own.
            result = replace(result, cpu_seconds=None)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def _whole_run(
    name: str, directory: Path, options: list[str], env: dict[str, str] | None = None
) -> ModeResult:
    summary_path = directory / "summary.json"
    started = time.perf_counter()
    process = _start(
        directory, ["insert_data", *options, "-v", "0", "--json", str(summary_path)], env
    )
    # wait4: the process's CPU time, its own and its children's (the slices' processes).
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if not summary_path.exists():
        raise RuntimeError(
            f"{name}: insert_data exited {process.returncode}: {process.stderr.read()}"
        )
    summary = json.loads(summary_path.read_text())
    models = summary["summary"].values()
    return ModeResult(
        name,
        rows=sum(model["rows_found"] for model in models),
        seconds=seconds,
        # A child's peak RSS counts the pages it shared with this process before it ran
        # manage.py: not the run's own, so not shown.
        peak_rss_mb=None,
        failed=sum(model["failed"] for model in models),
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


def _environment(directory: Path, extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_")}
    return {**env, "DS_DATA_DIR": str(directory), **(extra or {})}


def _start(directory: Path, arguments: list[str], env: dict[str, str] | None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), *arguments],
        env=_environment(directory, env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _migrate(directory: Path, env: dict[str, str] | None = None) -> None:
    """Every database made before the clock starts, as on a machine that has run before: a run
    of no records migrates them all."""
    subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "insert_data", "--records", "0",
         "-v", "0"],
        env=_environment(directory, env),
        check=True,
        capture_output=True,
    )  # fmt: skip


@contextlib.contextmanager
def _celery_workers(directory: Path, env: dict[str, str]) -> Iterator[None]:
    """Local Celery workers (one pool process each) on the run's queue, stopped afterwards."""
    workers = [
        subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "distributed_system", "worker",
                "--concurrency", "1", "--hostname", f"benchmark{number}@%h",
                "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
            ],
            cwd=settings.BASE_DIR,
            env=_environment(directory, env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for number in range(1, CELERY_WORKERS + 1)
    ]  # fmt: skip
    try:
        _wait_for_workers(directory, env)
        yield
    finally:
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.wait()


def _wait_for_workers(directory: Path, env: dict[str, str]) -> None:
    """Until every worker answers: a run's clock must not include their start-up."""
    deadline = time.monotonic() + WORKER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        answer = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "distributed_system", "inspect", "ping",
             "--timeout", "1", "--json"],
            cwd=settings.BASE_DIR,
            env=_environment(directory, env),
            capture_output=True,
            text=True,
        )  # fmt: skip
        with contextlib.suppress(ValueError):
            if len(json.loads(answer.stdout or "{}")) >= CELERY_WORKERS:
                return
    raise RuntimeError(f"{CELERY_WORKERS} Celery workers did not start within a minute")
