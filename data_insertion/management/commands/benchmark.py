from django.core.management.base import BaseCommand, CommandError

from data_insertion.benchmark import (
    ModeResult,
    UnsupportedDatabases,
    databases_vendor,
    run_benchmark,
)
from data_insertion.cli import MAX_BATCH_SIZE, MAX_RECORDS, MAX_THREADS, bounded_int


def counts(text: str) -> tuple[int, ...]:
    parse = bounded_int(1, MAX_RECORDS)
    return tuple(parse(part) for part in text.split(",") if part.strip())


class Command(BaseCommand):
    help = (
        "Measure the engine against the raw driver (sqlite3, or psycopg when the three databases "
        "are on PostgreSQL) on the same workload, in one process, on temporary databases, and "
        "print rows/s, ratios and a scaling table."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--threads", type=bounded_int(1, MAX_THREADS), default=10)
        parser.add_argument("--records", type=bounded_int(1, MAX_RECORDS), default=20_000)
        parser.add_argument("--batch-size", type=bounded_int(1, MAX_BATCH_SIZE), default=500)
        parser.add_argument("--seed", type=bounded_int(0, 2**63 - 1), default=1)
        parser.add_argument(
            "--scaling-threads", type=counts, default=(10, 100, 1000), metavar="N,N,..."
        )
        parser.add_argument(
            "--scaling-records", type=counts, default=(1_000, 10_000, 100_000), metavar="N,N,..."
        )
        parser.add_argument(
            "--quick",
            action="store_true",
            help="a run under a minute: 5,000 records, scaling 10 and 100 threads x 1,000 and "
            "10,000 records",
        )

    def handle(self, *args, **options) -> None:
        try:
            vendor = databases_vendor()
        except UnsupportedDatabases as error:
            raise CommandError(str(error)) from None
        if options["quick"]:
            options.update(
                records=5_000, scaling_threads=(10, 100), scaling_records=(1_000, 10_000)
            )
        self.stdout.write(
            f"Workload: {options['threads']} threads per model, {options['records']:,} records "
            f"per model (users, products, orders), seed {options['seed']}, no invalid records, "
            f"on {vendor}."
        )
        self.stdout.write(
            f"{'':4}{'mode':<46}{'rows':>9}{'seconds':>9}{'rows/s':>10}{'peak RSS':>10}"
        )
        report = run_benchmark(
            threads=options["threads"],
            records=options["records"],
            batch_size=options["batch_size"],
            seed=options["seed"],
            scaling_threads=options["scaling_threads"],
            scaling_records=options["scaling_records"],
            on_result=self._print_result,
        )
        self.stdout.write("")
        for numerator, denominator in (("a", "c"), ("b", "c"), ("b", "d")):
            self.stdout.write(
                f"{numerator}/{denominator} = {report.ratio(numerator, denominator):.2f}"
            )
        failed = sum(r.failed for r in [*report.modes.values(), *report.scaling])
        if failed:
            raise CommandError(f"{failed} records failed during the benchmark.", returncode=1)

    def _print_result(self, result: ModeResult) -> None:
        self.stdout.write(
            f"{'':4}{result.name:<46}{result.rows:>9,}{result.seconds:>9.2f}"
            f"{result.rows_per_second:>10,.0f}{result.peak_rss_mb:>8.0f} MB"
        )
