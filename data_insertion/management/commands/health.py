import argparse
import json

from django.core.management.base import CommandError

from data_insertion.health import check_health, problems, report_lines
from data_insertion.management.run_command import OneLineErrorCommand


class Command(OneLineErrorCommand):
    help = (
        "Report every database (shards included) and the shared cache: reachable or not (with "
        "the error), engine and location, rows per table, size, the latency of SELECT 1, the "
        "circuit breaker's state, and the cache's hit ratio. Exit status 1 when any is "
        "unreachable."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options) -> None:
        report = check_health()
        if options["json"]:
            self.stdout.write(json.dumps(report.to_dict(), indent=2))
        else:
            for line in report_lines(report):
                self.stdout.write(line)
        unhealthy = problems(report)
        if unhealthy:
            raise CommandError(f"Unhealthy: {', '.join(unhealthy)}.", returncode=1)
        if not options["json"]:
            self.stdout.write(self.style.SUCCESS("Healthy: every database and the cache answer."))
