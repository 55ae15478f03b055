import argparse
import json

from django.core.management.base import CommandError

from data_insertion.management.options import bounded_int, check_output_path
from data_insertion.management.output import write_atomically
from data_insertion.management.run_command import OneLineErrorCommand
from data_insertion.report import render_pdf
from data_insertion.runs.models import Run
from data_insertion.runs.recording import summary_of

LIST_FIELDS = (
    "id",
    "status",
    "source",
    "created_at",
    "started_at",
    "heartbeat_at",
    "config",
    "rows_per_second",
    "p95_ms",
)


class Command(OneLineErrorCommand):
    help = (
        "List the recorded runs, newest first; with a run id, write that run's summary "
        "(--json) or PDF report (--pdf)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run", nargs="?", type=int, help="a run's id, as the list shows it")
        parser.add_argument(
            "--limit", type=bounded_int(1, 10_000), default=20, help="runs to list (default 20)"
        )
        parser.add_argument("--json", metavar="PATH", help="write the run's summary as JSON")
        parser.add_argument("--pdf", metavar="PATH", help="write the run's PDF report")

    def handle(self, *args, **options) -> None:
        if options["run"] is None:
            if options["json"] or options["pdf"]:
                raise CommandError("--json and --pdf need a run id: runs ID --pdf PATH")
            self.list_runs(options["limit"])
            return
        json_path = check_output_path(options["json"], "--json") if options["json"] else None
        pdf_path = check_output_path(options["pdf"], "--pdf") if options["pdf"] else None
        run = Run.objects.filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(f"no run {options['run']}: python manage.py runs lists them")
        self.stdout.write(run_line(run))
        summary = summary_of(run)
        if summary is None and (options["json"] or options["pdf"]):
            raise CommandError(f"run {run.pk} is {run.status}: it has no summary")
        if summary is not None:
            self.stdout.write(summary.verdict)
        if options["json"]:
            payload = json.dumps(summary.to_dict(), indent=2, ensure_ascii=False)
            if json_path is None:
                self.stdout.write(payload)
            else:
                write_atomically(json_path, payload.encode(errors="backslashreplace"))
                self.stdout.write(self.style.SUCCESS(f"JSON written: {json_path}"))
        if options["pdf"]:
            if pdf_path is None:
                raise CommandError("--pdf -: a PDF goes to a file, not standard output")
            write_atomically(pdf_path, render_pdf(summary))
            self.stdout.write(self.style.SUCCESS(f"PDF written: {pdf_path}"))

    def list_runs(self, limit: int) -> None:
        runs = list(Run.objects.only(*LIST_FIELDS, "verdict", "passed")[:limit])
        if not runs:
            self.stdout.write("No runs recorded yet: python manage.py insert_data records one.")
            return
        self.stdout.write(
            f"{'Run':>5}  {'Status':<11}  {'Source':<9}  {'Created (UTC)':<19}  "
            f"{'Threads':>7}  {'Records':>10}  {'Rows/s':>9}  {'p95 ms':>8}  Verdict"
        )
        for run in runs:
            self.stdout.write(run_line(run))


def run_line(run: Run) -> str:
    rows_per_second = f"{run.rows_per_second:,.0f}" if run.rows_per_second is not None else "-"
    p95 = f"{run.p95_ms:,.2f}" if run.p95_ms is not None else "-"
    verdict = {True: "PASS", False: "FAIL", None: "-"}[run.passed]
    return (
        f"{run.pk:>5}  {run.shown_status:<11}  {run.source:<9}  "
        f"{run.created_at:%Y-%m-%d %H:%M:%S}  {run.config['threads']:>7,}  "
        f"{run.config['records']:>10,}  {rows_per_second:>9}  {p95:>8}  {verdict}"
    )
