"""What the simulation commands share: their options, output paths, and the run itself.

insert_data and simulate_insertions are the same command under two names; generate_pdf_report
adds an output. Each stays a thin subclass; the work happens in the engine (simulation.py).
"""

import argparse
import json
import os
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from .console import record_line, summary_lines
from .services import FAILED, InsertionResult
from .simulation import (
    DatabaseUnavailable,
    SimulationConfig,
    SimulationError,
    migrate_databases,
    run_simulation,
)
from .summary import RunSummary

MAX_THREADS = 1000
MAX_RECORDS = 10_000_000
MAX_BATCH_SIZE = 10_000
# At verbosity 1 the console shows this many per-record lines per model, then only the summary.
RECORD_LINES_AT_VERBOSITY_1 = 100
FAILED_LINES_AT_VERBOSITY_0 = 100
PROGRESS_INTERVAL_SECONDS = 0.5
CLEAR_LINE = "\r\033[K"
INTERRUPTED_EXIT_CODE = 130  # what shells report for a process stopped by Ctrl-C


def bounded_int(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low:,}..{high:,}")
        return value

    return parse


def ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..1")
    return value


def check_output_path(path: str, option: str) -> Path:
    """Refuse, before any work, a path whose file could not be written."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise CommandError(f"{option} {path}: is a directory, not a file path")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise CommandError(f"{option} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise CommandError(f"{option} {path}: not writable")
    return target


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


STATUS_STYLES = {
    "inserted": lambda style: style.SUCCESS,
    "rejected": lambda style: style.WARNING,
    "failed": lambda style: style.ERROR,
}


class OneLineErrorCommand(BaseCommand):
    """A bad option is one line ("...: error: argument --threads: 0 is outside 1..1,000"),
    not the usage block first: the message names the option and its range."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> argparse.ArgumentParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.print_usage = lambda file=None: None
        return parser


class SimulationCommand(OneLineErrorCommand):
    help = (
        "Insert users, products and orders from many threads at once into three databases, "
        "validate every record, and print what was committed."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--threads",
            type=bounded_int(1, MAX_THREADS),
            default=10,
            help=f"worker threads per model, 1..{MAX_THREADS} (default 10)",
        )
        parser.add_argument(
            "--records",
            type=bounded_int(0, MAX_RECORDS),
            default=10,
            help="records per model (default 10: the demo data set unless --seed is given)",
        )
        parser.add_argument(
            "--seed",
            type=bounded_int(0, 2**63 - 1),
            default=None,
            help="generate records deterministically from this seed (generated runs default to 0)",
        )
        parser.add_argument(
            "--invalid-ratio",
            type=ratio,
            default=0.1,
            help="share of generated records made invalid on purpose, 0..1 (default 0.1)",
        )
        parser.add_argument(
            "--batch-size",
            type=bounded_int(1, MAX_BATCH_SIZE),
            default=None,
            help="group commit: one writer per database commits up to N records per transaction "
            "(default: every worker commits each record in its own transaction)",
        )
        parser.add_argument(
            "--fresh", action="store_true", help="empty the three databases before the run"
        )
        parser.add_argument(
            "--json",
            metavar="PATH",
            help="also write the run's summary as JSON to PATH",
        )
        parser.add_argument(
            "--details",
            metavar="PATH",
            help="stream every record's verdict to PATH as JSON lines (for runs too large to "
            "list on the console or in the summary)",
        )

    def handle(self, *args, **options) -> None:
        # Every output path is checked before the run: a bad one costs nothing.
        json_path = check_output_path(options["json"], "--json") if options["json"] else None
        if options["details"]:
            check_output_path(options["details"], "--details")
        summary = self.run(options)
        if json_path is not None:
            payload = json.dumps(summary.to_dict(), indent=2, ensure_ascii=False)
            try:
                write_atomically(json_path, payload.encode(errors="backslashreplace"))
            except OSError as error:
                raise CommandError(f"--json {options['json']}: {error.strerror or error}") from None
        self.finish(summary, options)

    def run(self, options: dict) -> RunSummary:
        """Migrate, run the engine and report each record's verdict as it comes."""
        try:
            migrate_databases()
        except DatabaseUnavailable as error:
            raise CommandError(f"cannot use {error}") from None
        config = SimulationConfig(
            threads=options["threads"],
            records=options["records"],
            seed=options["seed"],
            invalid_ratio=options["invalid_ratio"],
            fresh=options["fresh"],
            batch_size=options["batch_size"],
        )
        stop = threading.Event()
        with (
            RunOutput(self, options, total=3 * config.records) as output,
            stop_on_interrupt(stop, self.stderr),
        ):
            try:
                summary = run_simulation(config, on_result=output, stop=stop)
            except SimulationError as error:
                raise CommandError(str(error)) from None
        summary.output_error = output.error or summary.output_error
        if options["verbosity"] == 1 and any(
            model.attempted > RECORD_LINES_AT_VERBOSITY_1 for model in summary.models.values()
        ):
            self.stdout.write(
                f"(per-record lines for the first {RECORD_LINES_AT_VERBOSITY_1} records of each "
                "model; -v 2 shows every record)"
            )
        for line in summary_lines(summary):
            self.stdout.write(line)
        return summary

    def finish(self, summary: RunSummary, options: dict) -> None:
        if summary.output_error:
            raise CommandError(
                f"the run's output could not be written ({summary.output_error}); the summary "
                "above counts every record all the same.",
                returncode=1,
            )
        if summary.interrupted:
            raise CommandError(
                "interrupted: the summary above counts what was committed before the stop.",
                returncode=INTERRUPTED_EXIT_CODE,
            )
        if summary.failed:
            raise CommandError(
                f"{summary.failed:,} records failed to commit (reasons above; --details lists "
                "every record).",
                returncode=1,
            )
        if summary.unattempted:
            raise CommandError(
                f"{summary.unattempted:,} records never got a verdict.", returncode=1
            )
        if not summary.reconciled:
            raise CommandError("the rows in the databases do not match 'inserted'.", returncode=1)
        self.stdout.write(self.style.SUCCESS("Data insertion completed"))


@contextmanager
def stop_on_interrupt(stop: threading.Event, stderr) -> Iterator[None]:
    """The first Ctrl-C asks the run to stop cleanly; a second one aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def request_stop(signum, frame) -> None:
        stderr.write("\nStopping: workers take no new record; Ctrl-C again aborts at once.")
        stop.set()
        signal.signal(signal.SIGINT, abort)

    def abort(signum, frame) -> None:
        # Uncommitted transactions die with the process: the databases roll them back.
        stderr.write("\nAborted: transactions in flight were rolled back; nothing is summarised.")
        stderr.flush()
        os._exit(INTERRUPTED_EXIT_CODE)

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class RunOutput:
    """What a run reports while it goes: record lines on stdout (by -v), a progress line on
    stderr (terminals only, -v 1 and up), and every verdict as JSON lines with --details."""

    def __init__(self, command: BaseCommand, options: dict, total: int) -> None:
        self.command = command
        self.verbosity = options["verbosity"]
        self.line_limit = {0: 0, 1: RECORD_LINES_AT_VERBOSITY_1}.get(self.verbosity)
        self.lines_shown: Counter[tuple[str, bool]] = Counter()
        self.details_path = Path(options["details"]).expanduser() if options["details"] else None
        self.details = None
        self.total = total
        self.done = 0
        self.failed = 0
        self.show_progress = self.verbosity >= 1 and command.stderr.isatty()
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
        if self.details is None:
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
            self.failed += result.status == FAILED
            key = (result.model, result.status == FAILED)
            limit = self.line_limit
            if result.status == FAILED and limit == 0:
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
                    self.error = f"--details {self.details_path}: {error}"
                    raise
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


def result_details(result: InsertionResult) -> dict:
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
