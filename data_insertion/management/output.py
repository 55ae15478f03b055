"""Where a run's output goes while it runs and after: record lines and a progress line on the
console, every verdict as JSON lines (--details), and files written whole or not at all."""

import json
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand, OutputWrapper

from ..console import record_line
from ..engine.progress import ProgressSnapshot
from ..results import InsertionResult, Status

# At verbosity 1 the console shows this many per-record lines per model, then only the summary.
RECORD_LINES_AT_VERBOSITY_1 = 100
FAILED_LINES_AT_VERBOSITY_0 = 100
PROGRESS_INTERVAL_SECONDS = 0.5
CLEAR_LINE = "\r\033[K"

STATUS_STYLES = {
    Status.INSERTED: lambda style: style.SUCCESS,
    Status.REJECTED: lambda style: style.WARNING,
    Status.FAILED: lambda style: style.ERROR,
}


def write_atomically(target: Path, data: bytes) -> None:
    """Write beside the target, then rename: never a partial file, never a half-replaced one."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
    except BaseException:
        os.unlink(temporary)
        raise
    finish_temporary(temporary, target)


def finish_temporary(temporary: str, target: Path) -> None:
    """Give a finished temporary file the usual permissions and move it into place."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)  # mkstemp creates files readable by the owner only
    os.replace(temporary, target)


def result_details(result: InsertionResult) -> dict:
    """One record's line in --details."""
    return {
        "model": result.model,
        "status": result.status,
        "pk": result.pk,
        "values": result.values,
        "errors": result.errors,
        "thread": result.thread,
        "latency_ms": round(result.latency * 1000, 3),
        "attempts": result.attempts,
    }


class RunOutput:
    """What a run reports while it goes: record lines on the command's console (by -v), a
    progress line on stderr (terminals only, -v 1 and up), and every verdict as JSON lines to
    `details_path`, or to `machine_output` (standard output) when details go there."""

    def __init__(
        self,
        command: BaseCommand,
        verbosity: int,
        total: int,
        details_path: Path | None = None,
        machine_output: OutputWrapper | None = None,
    ) -> None:
        self.command = command
        self.verbosity = verbosity
        self.line_limit = {0: 0, 1: RECORD_LINES_AT_VERBOSITY_1}.get(verbosity)
        self.lines_shown: Counter[tuple[str, bool]] = Counter()
        self.details_path = details_path
        self.details = machine_output
        self.details_temporary: str | None = None
        self.total = total
        self.done = 0
        self.failed = 0
        self.show_progress = verbosity >= 1 and command.stderr.isatty()
        self.progress_shown = False
        self.started = self.last_progress = time.monotonic()
        self.lock = threading.Lock()
        self.error: str | None = None

    def __enter__(self) -> "RunOutput":
        if self.details_path is not None:
            # Streamed beside the target, then renamed: never a partial file in its place.
            handle, self.details_temporary = tempfile.mkstemp(
                dir=self.details_path.parent, prefix=f".{self.details_path.name}."
            )
            self.details = os.fdopen(handle, "w", encoding="utf-8", errors="backslashreplace")
        return self

    def __exit__(self, exception_type, *exc_info) -> None:
        if self.progress_shown:
            self.command.stderr.write(CLEAR_LINE, ending="")
        if self.details_temporary is None:
            return
        try:
            self.details.close()
        except OSError as error:
            self.error = self.error or f"--details {self.details_path}: {error}"
        if exception_type is None and self.error is None:
            finish_temporary(self.details_temporary, self.details_path)
        else:  # an incomplete details file never takes the target's place
            Path(self.details_temporary).unlink(missing_ok=True)

    def __call__(self, result: InsertionResult) -> None:
        with self.lock:
            self.done += 1
            failed = result.status == Status.FAILED
            self.failed += failed
            key = (result.model, failed)
            limit = self.line_limit
            if failed and limit == 0:
                limit = FAILED_LINES_AT_VERBOSITY_0  # failures are listed even at -v 0
            if limit is None or self.lines_shown[key] < limit:
                self.lines_shown[key] += 1
                if self.progress_shown:
                    self.command.stderr.write(CLEAR_LINE, ending="")
                    self.progress_shown = False
                self.command.stdout.write(
                    record_line(result), style_func=STATUS_STYLES[result.status](self.command.style)
                )
            if self.details is not None:
                try:
                    self.details.write(
                        json.dumps(result_details(result), ensure_ascii=False) + "\n"
                    )
                except OSError as error:
                    self.error = f"--details {self.details_path or '-'}: {error}"
                    raise
            if self.show_progress:
                self._progress()

    def show_snapshot(self, snapshot: ProgressSnapshot) -> None:
        """The progress line from the engine's snapshot: a spread run's counts, all processes
        together (its verdicts are not handed to this process one by one)."""
        with self.lock:
            self.done = sum(m.committed + m.rejected + m.failed for m in snapshot.models)
            self.failed = sum(m.failed for m in snapshot.models)
            if self.show_progress:
                self._progress()

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self.last_progress < PROGRESS_INTERVAL_SECONDS:
            return
        self.last_progress = now
        rate = self.done / (now - self.started)
        eta = (self.total - self.done) / rate if rate else 0
        self.command.stderr.write(
            f"{CLEAR_LINE}{self.done:,}/{self.total:,} records  {rate:,.0f}/s  "
            f"{self.failed:,} failed  ETA {eta:,.0f} s",
            ending="",
        )
        self.command.stderr.flush()
        self.progress_shown = True
