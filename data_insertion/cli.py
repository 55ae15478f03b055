"""What the simulation commands share: their options, output paths, and the run itself.

insert_data and simulate_insertions are the same command under two names; generate_pdf_report
adds an output. Each stays a thin subclass; the work happens in the engine (simulation.py).
"""

import argparse
import json
import os
import tempfile
import threading
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from .console import record_line, summary_lines
from .services import InsertionResult
from .simulation import SimulationConfig, migrate_databases, run_simulation
from .summary import RunSummary

MAX_THREADS = 1000
MAX_RECORDS = 10_000_000
MAX_BATCH_SIZE = 10_000
# At verbosity 1 the console shows this many per-record lines per model, then only the summary.
RECORD_LINES_AT_VERBOSITY_1 = 100


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
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise


STATUS_STYLES = {
    "inserted": lambda style: style.SUCCESS,
    "rejected": lambda style: style.WARNING,
    "failed": lambda style: style.ERROR,
}


class SimulationCommand(BaseCommand):
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

    def handle(self, *args, **options) -> None:
        json_path = check_output_path(options["json"], "--json") if options["json"] else None
        summary = self.run(options)
        if json_path is not None:
            payload = json.dumps(summary.to_dict(), indent=2, ensure_ascii=False)
            write_atomically(json_path, payload.encode())
        self.finish(summary, options)

    def run(self, options: dict) -> RunSummary:
        """Migrate, run the engine and print each record's verdict as it comes."""
        migrate_databases()
        config = SimulationConfig(
            threads=options["threads"],
            records=options["records"],
            seed=options["seed"],
            invalid_ratio=options["invalid_ratio"],
            fresh=options["fresh"],
            batch_size=options["batch_size"],
        )
        summary = run_simulation(config, on_result=self._printer(options["verbosity"]))
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
        if summary.failed:
            raise CommandError(
                f"{summary.failed:,} records failed to commit (each is listed above).",
                returncode=1,
            )
        if not summary.reconciled:
            raise CommandError("the rows in the databases do not match 'inserted'.", returncode=1)
        self.stdout.write(self.style.SUCCESS("Data insertion completed"))

    def _printer(self, verbosity: int):
        """A callback that prints verdicts as workers report them (failures at every -v)."""
        limit = {0: 0, 1: RECORD_LINES_AT_VERBOSITY_1}.get(verbosity)
        shown = {"user": 0, "product": 0, "order": 0}
        lock = threading.Lock()

        def print_result(result: InsertionResult) -> None:
            with lock:
                if result.status != "failed" and limit is not None and shown[result.model] >= limit:
                    return
                shown[result.model] += 1
                line = record_line(result)
                style = self.style.SUCCESS if result.status == "inserted" else self.style.WARNING
                self.stdout.write(
                    style(line) if result.status != "failed" else self.style.ERROR(line)
                )

        return print_result
