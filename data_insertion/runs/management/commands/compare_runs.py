import argparse
import json
from pathlib import Path

from django.core.management.base import CommandError

from data_insertion.management.run_command import OneLineErrorCommand
from data_insertion.runs.comparison import compare_summaries, parse_share
from data_insertion.runs.models import Run
from data_insertion.runs.recording import summary_of
from data_insertion.summary import RunSummary


def share(text: str) -> float:
    try:
        return parse_share(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage like 10%") from error


class Command(OneLineErrorCommand):
    help = (
        "Compare a candidate run with a baseline (rows/s, p50/p95/p99 per model); exit 1 when "
        "any of them is worse than --max-regression."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("baseline", help="a run id (python manage.py runs) or a --json file")
        parser.add_argument("candidate", help="a run id or a --json file")
        parser.add_argument(
            "--max-regression",
            type=share,
            default=0.1,
            help="how much worse a metric may get, as a percentage (default 10%%)",
        )

    def handle(self, *args, **options) -> None:
        baseline = load_summary(options["baseline"])
        candidate = load_summary(options["candidate"])
        comparisons = compare_summaries(baseline, candidate, options["max_regression"])
        self.stdout.write(
            f"{'Model':<8} {'Metric':<8} {'Baseline':>12} {'Candidate':>12} {'Change':>9}"
        )
        for row in comparisons:
            line = (
                f"{row.model:<8} {row.label:<8} {row.baseline:>12,.2f} {row.candidate:>12,.2f} "
                f"{row.change_text:>9}"
            )
            self.stdout.write(line + ("  REGRESSION" if row.regression else ""))
        regressions = [row for row in comparisons if row.regression]
        allowed = f"{options['max_regression']:.0%}"
        if regressions:
            raise CommandError(
                f"{len(regressions)} of {len(comparisons)} metrics got worse by more than "
                f"{allowed}",
                returncode=1,
            )
        self.stdout.write(self.style.SUCCESS(f"No metric got worse by more than {allowed}"))


def load_summary(reference: str) -> RunSummary:
    """A finished run's summary, by run id or from a file written by insert_data --json."""
    if reference.isdigit():
        run = Run.objects.filter(pk=int(reference)).first()
        if run is None:
            raise CommandError(f"no run {reference}: python manage.py runs lists them")
        summary = summary_of(run)
        if summary is None:
            raise CommandError(f"run {reference} is {run.status}: it has no summary yet")
        return summary
    try:
        return RunSummary.from_dict(json.loads(Path(reference).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CommandError(
            f"{reference}: not a run id nor a readable --json file ({error})"
        ) from None
