"""The options the commands share, each defined once: argparse types that reject bad values in
one line, and the run options that insert_data, simulate_insertions, generate_pdf_report and
benchmark take."""

import argparse
import os
from pathlib import Path

from django.core.management.base import CommandError

from ..engine import SimulationConfig
from ..engine.config import check_spread
from ..engine.faults import FaultSpecError, parse_fault

MAX_THREADS = 1000
MAX_RECORDS = 10_000_000
MAX_BATCH_SIZE = 10_000
MAX_SEED = 2**63 - 1
MAX_PROCESSES = 64
MAX_SLICE_COUNT = 1024
# An output path of "-" means standard output, as in most Unix tools.
STANDARD_OUTPUT = "-"


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


def add_threads_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--threads",
        type=bounded_int(1, MAX_THREADS),
        default=10,
        help=f"{help}, 1..{MAX_THREADS:,} (default 10)",
    )


def add_records_option(
    parser: argparse.ArgumentParser, default: int, help: str, minimum: int = 0
) -> None:
    parser.add_argument(
        "--records", type=bounded_int(minimum, MAX_RECORDS), default=default, help=help
    )


def add_batch_size_option(parser: argparse.ArgumentParser, default: int | None, help: str) -> None:
    parser.add_argument(
        "--batch-size", type=bounded_int(1, MAX_BATCH_SIZE), default=default, help=help
    )


def add_seed_option(parser: argparse.ArgumentParser, default: int | None, help: str) -> None:
    parser.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=default, help=help)


def fault(text: str):
    try:
        return parse_fault(text)
    except FaultSpecError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_fault_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fault",
        type=fault,
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a fault into one database during the run, repeatable: "
        "ALIAS:lock:DURATION@START (another connection holds its write lock), "
        "ALIAS:latency:DURATION (every write transaction takes that much longer), "
        "ALIAS:down:DURATION@START (it cannot be reached); durations like 500ms or 3s, "
        "START counted from the run's start",
    )


def add_scale_out_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--processes",
        type=bounded_int(1, MAX_PROCESSES),
        default=1,
        help=f"spread the run over N local processes, each with --threads threads per model, "
        f"1..{MAX_PROCESSES} (default 1)",
    )
    parser.add_argument(
        "--celery",
        action="store_true",
        help="spread the run over Celery workers (on any machine) through "
        "DS_CELERY_BROKER_URL; start them with: celery -A distributed_system worker",
    )
    parser.add_argument(
        "--slices",
        type=bounded_int(1, MAX_SLICE_COUNT),
        default=None,
        help=f"cut the run into N slices, 1..{MAX_SLICE_COUNT:,} (default: one per process; "
        "with --celery, two per worker process online)",
    )


def check_scale_out(options: dict) -> None:
    """Refuse, in one line, a combination of options a spread run cannot honour."""
    try:
        check_spread(
            options["processes"], options["celery"], options["slices"], lambda name: f"--{name}"
        )
    except ValueError as error:
        raise CommandError(str(error)) from None
    if (options["celery"] or options["processes"] > 1) and options.get("details"):
        raise CommandError(
            "--details streams every verdict from one process: not with --processes or --celery"
        )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """What a run is: the options of insert_data, simulate_insertions and generate_pdf_report."""
    add_threads_option(parser, help="worker threads per model")
    add_records_option(
        parser,
        default=10,
        help="records per model (default 10: the demo data set unless --seed is given)",
    )
    add_seed_option(
        parser,
        default=None,
        help="generate records deterministically from this seed (generated runs default to 0)",
    )
    parser.add_argument(
        "--invalid-ratio",
        type=ratio,
        default=0.1,
        help="share of generated records made invalid on purpose, 0..1 (default 0.1)",
    )
    add_batch_size_option(
        parser,
        default=None,
        help="group commit: one writer per database commits up to N records per transaction "
        "(default: every worker commits each record in its own transaction)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="empty the three databases before the run"
    )
    add_fault_option(parser)
    add_scale_out_options(parser)
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="also write the run's summary as JSON to PATH (- for standard output, the human "
        "summary then going to standard error)",
    )
    parser.add_argument(
        "--details",
        metavar="PATH",
        help="stream every record's verdict to PATH as JSON lines (- for standard output), for "
        "runs too large to list on the console or in the summary",
    )


def run_config(options: dict) -> SimulationConfig:
    return SimulationConfig(
        threads=options["threads"],
        records=options["records"],
        seed=options["seed"],
        invalid_ratio=options["invalid_ratio"],
        fresh=options["fresh"],
        batch_size=options["batch_size"],
        faults=tuple(options["fault"]),
        processes=options.get("processes", 1),
        celery=options.get("celery", False),
        slices=options.get("slices"),
    )


def check_output_path(path: str, option: str) -> Path | None:
    """Refuse, before any work, a path whose file could not be written; None for "-"."""
    if path == STANDARD_OUTPUT:
        return None
    target = Path(path).expanduser()
    if target.is_dir():
        raise CommandError(f"{option} {path}: is a directory, not a file path")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise CommandError(f"{option} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise CommandError(f"{option} {path}: not writable")
    return target
