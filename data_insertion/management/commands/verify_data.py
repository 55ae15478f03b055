import argparse

from django.core.management.base import CommandError

from data_insertion.audit import AuditError, audit_databases, report_lines
from data_insertion.management.options import MAX_RECORDS, bounded_int
from data_insertion.management.run_command import OneLineErrorCommand

# Exit status 2 when the audit could not run, as diff and grep do: 1 means it found problems.
CANNOT_AUDIT_EXIT_CODE = 2


class Command(OneLineErrorCommand):
    help = (
        "Audit the users, products and orders databases without writing to them: rows breaking "
        "a field rule, wrong email_normalized columns, emails shared by several users, orders "
        "whose user or product does not exist. Exit status: 0 no problems, 1 problems found "
        "(listed), 2 the databases could not be read (not migrated, unreachable)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--limit",
            type=bounded_int(0, MAX_RECORDS),
            default=100,
            help="findings printed per kind; the rest are counted (default 100)",
        )

    def handle(self, *args, **options) -> None:
        try:
            result = audit_databases(limit=options["limit"])
        except AuditError as error:
            raise CommandError(str(error), returncode=CANNOT_AUDIT_EXIT_CODE) from None
        for line in report_lines(result):
            self.stdout.write(line)
        if result.problems:
            noun = "problem" if result.problems == 1 else "problems"
            raise CommandError(f"{result.problems:,} {noun} found (see above).", returncode=1)
        databases = ", ".join(result.rows_checked)
        self.stdout.write(self.style.SUCCESS(f"No problems found in {databases}."))
