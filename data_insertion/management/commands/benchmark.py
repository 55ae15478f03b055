import os

from django.conf import settings
from django.core.management.base import CommandError

from data_insertion.benchmark import (
    ModeResult,
    UnsupportedDatabases,
    compare_modes,
    databases_vendor,
    measure_cache,
    measure_scaling,
    measure_shards,
)
from data_insertion.benchmark.processes import measure_processes
from data_insertion.engine.faults import FaultSpecError, check_supported
from data_insertion.management.options import (
    MAX_PROCESSES,
    MAX_RECORDS,
    add_batch_size_option,
    add_fault_option,
    add_records_option,
    add_seed_option,
    add_threads_option,
    bounded_int,
)
from data_insertion.management.run_command import OneLineErrorCommand
from data_insertion.topology.shards import MAX_DATABASES
from data_insertion.topology.shared_cache import SHARED_CACHE, cache_location


def comma_separated(low: int, high: int):
    """An argparse type: whole numbers in low..high, separated by commas ("1,2,4")."""
    parse = bounded_int(low, high)

    def numbers(text: str) -> tuple[int, ...]:
        return tuple(parse(part) for part in text.split(",") if part.strip())

    return numbers


class Command(OneLineErrorCommand):
    help = (
        "Measure the engine against the raw driver (sqlite3, or psycopg when the three databases "
        "are on PostgreSQL) on the same workload, in one process, on temporary databases, and "
        "print rows/s, ratios and a scaling table."
    )

    def add_arguments(self, parser) -> None:
        add_threads_option(parser, help="worker threads per model in modes a-c")
        add_records_option(
            parser,
            default=20_000,
            minimum=1,
            help="records per model in modes a-d (default 20,000)",
        )
        add_batch_size_option(
            parser,
            default=500,
            help="group commit batch size for mode b and the scaling table (default 500)",
        )
        add_seed_option(parser, default=1, help="the seed of the generated records (default 1)")
        add_fault_option(parser)
        parser.add_argument(
            "--scaling-threads",
            type=comma_separated(1, MAX_RECORDS),
            default=(10, 100, 1000),
            metavar="N,N,...",
            help="thread counts of the scaling table (default 10,100,1000)",
        )
        parser.add_argument(
            "--scaling-records",
            type=comma_separated(1, MAX_RECORDS),
            default=(1_000, 10_000, 100_000),
            metavar="N,N,...",
            help="records per model in the scaling table (default 1000,10000,100000)",
        )
        parser.add_argument(
            "--shards",
            type=comma_separated(1, MAX_DATABASES),
            metavar="N,N,...",
            help="measure only the shard axis: the engine, one transaction per record and group "
            "commit, with every model over each number of SQLite files (e.g. 1,2,4)",
        )
        parser.add_argument(
            "--processes",
            type=comma_separated(1, MAX_PROCESSES),
            metavar="N,N,...",
            help="measure only the processes axis: whole insert_data processes with --processes "
            "N for each N (e.g. 1,2), one transaction per record and group commit, beside the raw "
            "sqlite3 loop; and over two local Celery workers when DS_CELERY_BROKER_URL is set",
        )
        parser.add_argument(
            "--cache",
            action="store_true",
            help="measure only the cache line: orders/s of both engine modes without the shared "
            "cache and through it (needs DS_CACHE_URL)",
        )
        parser.add_argument(
            "--quick",
            action="store_true",
            help="a run under a minute: 5,000 records, scaling 10 and 100 threads x 1,000 and "
            "10,000 records",
        )

    def handle(self, *args, **options) -> None:
        faults = tuple(options["fault"])
        try:
            vendor = databases_vendor()
            check_supported(faults)
        except UnsupportedDatabases as error:
            raise CommandError(str(error)) from None
        except FaultSpecError as error:
            raise CommandError(f"--fault {error}") from None
        if options["quick"]:
            options.update(
                records=5_000, scaling_threads=(10, 100), scaling_records=(1_000, 10_000)
            )
        self.stdout.write(
            f"Workload: {options['threads']} threads per model, {options['records']:,} records "
            f"per model (users, products, orders), seed {options['seed']}, no invalid records, "
            f"on {vendor}. Peak RSS is the whole process's."
        )
        if faults:
            self.stdout.write(
                "Faults injected into every engine run (mode a, mode b and the scaling table; "
                f"the raw baselines run without them): {', '.join(f.describe() for f in faults)}."
            )
        if options["shards"]:
            self._measure_shards(options, faults)
            return
        if options["processes"]:
            if faults or vendor != "sqlite":
                raise CommandError("the --processes axis runs on SQLite files, without --fault")
            self._measure_processes(options)
            return
        if options["cache"]:
            _refuse_failures(self._measure_cache(options, faults))
            return
        self.stdout.write(ROW.format("", "mode", "rows", "seconds", "rows/s", "peak RSS"))
        report = compare_modes(
            threads=options["threads"],
            records=options["records"],
            batch_size=options["batch_size"],
            seed=options["seed"],
            faults=faults,
            on_result=self._print_result,
        )
        self.stdout.write(
            "    "
            + "   ".join(
                f"{a}/{b} = {report.ratio(a, b):.2f}"
                for a, b in (("a", "c"), ("b", "c"), ("b", "d"))
            )
        )
        results = list(report.modes.values())
        if options["scaling_threads"] and options["scaling_records"]:
            self.stdout.write("")
            self.stdout.write(
                f"Scaling: the engine with group commit (batch {options['batch_size']})"
            )
            self.stdout.write(
                ROW.format(
                    "", "threads x records per model", "rows", "seconds", "rows/s", "peak RSS"
                )
            )
            results += measure_scaling(
                thread_counts=options["scaling_threads"],
                record_counts=options["scaling_records"],
                batch_size=options["batch_size"],
                seed=options["seed"],
                faults=faults,
                on_result=self._print_result,
            )
        if SHARED_CACHE in settings.CACHES:
            self.stdout.write("")
            results += self._measure_cache(options, faults)
        _refuse_failures(results)

    def _measure_cache(self, options: dict, faults: tuple) -> list[ModeResult]:
        self.stdout.write(
            "Cache: orders through the shared cache "
            f"({cache_location(settings.CACHES[SHARED_CACHE]['LOCATION'])}) and without it; "
            "rows and seconds are the orders' (their wall time)"
        )
        self.stdout.write(ROW.format("", "orders", "rows", "seconds", "orders/s", "peak RSS"))
        try:
            return measure_cache(
                threads=options["threads"],
                records=options["records"],
                batch_size=options["batch_size"],
                seed=options["seed"],
                faults=faults,
                on_result=self._print_result,
            )
        except UnsupportedDatabases as error:
            raise CommandError(str(error)) from None

    def _measure_shards(self, options: dict, faults: tuple) -> None:
        self.stdout.write(
            f"Shards: the engine (group commit batch {options['batch_size']}) with every model "
            "over N SQLite files, in this one process"
        )
        self.stdout.write(ROW.format("", "databases", "rows", "seconds", "rows/s", "peak RSS"))
        try:
            results = measure_shards(
                shard_counts=options["shards"],
                threads=options["threads"],
                records=options["records"],
                batch_size=options["batch_size"],
                seed=options["seed"],
                faults=faults,
                on_result=self._print_result,
            )
        except UnsupportedDatabases as error:
            raise CommandError(str(error)) from None
        _refuse_failures(results)

    def _measure_processes(self, options: dict) -> None:
        self.stdout.write(
            "Processes: whole insert_data processes (start-up, checks and reconciliation "
            "included) on fresh SQLite files"
        )
        self.stdout.write(ROW.format("", "run", "rows", "seconds", "rows/s", "cores"))
        baseline = compare_modes(
            threads=options["threads"],
            records=options["records"],
            batch_size=options["batch_size"],
            seed=options["seed"],
            only=("c",),
        ).modes["c"]
        self._print_cores(baseline)
        results = measure_processes(
            process_counts=options["processes"],
            threads=options["threads"],
            records=options["records"],
            batch_size=options["batch_size"],
            seed=options["seed"],
            celery_broker=settings.CELERY_BROKER_URL,
            on_result=self._print_cores,
        )
        if not settings.CELERY_BROKER_URL:
            self.stdout.write("    (no Celery line: DS_CELERY_BROKER_URL is not set)")
        self.stdout.write(
            f"    cores: CPU time over wall time, of the whole process and its children; this "
            f"machine has {os.cpu_count()}"
        )
        for line in process_ratios(results, baseline):
            self.stdout.write(f"    {line}")
        _refuse_failures(results)

    def _print_result(self, result: ModeResult) -> None:
        self._print_row(
            result, "-" if result.peak_rss_mb is None else f"{result.peak_rss_mb:.0f} MB"
        )

    def _print_cores(self, result: ModeResult) -> None:
        self._print_row(result, "-" if result.cores is None else f"{result.cores:.2f}")

    def _print_row(self, result: ModeResult, last: str) -> None:
        self.stdout.write(
            ROW.format(
                "",
                result.name,
                f"{result.rows:,}",
                f"{result.seconds:.2f}",
                f"{result.rows_per_second:,.0f}",
                last,
            )
        )


ROW = "{:4}{:<50}{:>10}{:>9}{:>10}{:>10}"


def process_ratios(results: list[ModeResult], raw_loop: ModeResult) -> list[str]:
    """Each run's rate over the one-process run of its mode, and over the raw sqlite3 loop."""
    by_name = {result.name: result for result in results}
    lines = []
    for result in results:
        processes, _, mode = result.name.partition(", ")
        one = by_name.get(f"1 process, {mode}")
        if one is None or one is result or not one.rows_per_second:
            continue
        lines.append(
            f"{processes}, {mode}: {result.rows_per_second / one.rows_per_second:.2f}x "
            f"1 process, {result.rows_per_second / raw_loop.rows_per_second:.2f}x the raw loop"
        )
    return lines


def _refuse_failures(results: list[ModeResult]) -> None:
    """Exit 1 when any measured run failed records: its rate would not be the workload's."""
    failed = sum(result.failed for result in results)
    if failed:
        raise CommandError(f"{failed} records failed during the benchmark.", returncode=1)
