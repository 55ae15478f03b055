import argparse
import json
from pathlib import Path

from django.core.management.base import CommandError

from data_insertion.console import summary_lines
from data_insertion.management.options import check_output_path
from data_insertion.management.output import write_atomically
from data_insertion.management.run_command import RunCommand
from data_insertion.report import render_report
from data_insertion.summary import RunSummary


class Command(RunCommand):
    help = (
        "Run the simulation like insert_data and write a printable PDF report of it; with "
        "--from-json, render a run saved by insert_data --json instead of running again."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--output",
            metavar="PATH",
            default="report.pdf",
            help="where to write the PDF (default report.pdf)",
        )
        parser.add_argument(
            "--from-json",
            metavar="PATH",
            help="render the run saved in PATH by insert_data --json; nothing runs, and the "
            "run options are ignored",
        )

    def handle(self, *args, **options) -> None:
        # Refuse an unwritable --output before a run whose report could not be saved.
        if options["output"] == "-":
            raise CommandError("--output -: a PDF goes to a file, not to standard output")
        check_output_path(options["output"], "--output")
        if options["from_json"] is None:
            # insert_data's handle: checks --json, runs, writes the JSON, then calls finish().
            super().handle(*args, **options)
            return
        if options["json"]:
            raise CommandError("--json and --from-json together: the run is already saved")
        summary = load_summary(options["from_json"])
        for line in summary_lines(summary):
            self.stdout.write(line)
        self.write_report(summary, options)
        # Rendering a run that went wrong is a success of this command: say so, exit 0.
        if not summary.ok:
            self.stdout.write(
                self.style.WARNING(f"Run {summary.run_id} did not pass: see the report.")
            )

    def finish(self, summary: RunSummary, options: dict) -> None:
        """After the run: the report, then insert_data's verdict and exit status."""
        self.write_report(summary, options)
        super().finish(summary, options)

    def write_report(self, summary: RunSummary, options: dict) -> None:
        # Checked again: the directory may have gone while the simulation ran.
        target = check_output_path(options["output"], "--output")
        report = render_report(summary)
        try:
            write_atomically(target, report.pdf)
        except OSError as error:
            raise CommandError(f"--output {options['output']}: {error.strerror or error}") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Report written to {options['output']} "
                f"({report.pages} pages, {len(report.pdf) / 1024:,.0f} KiB)"
            )
        )


def load_summary(path: str) -> RunSummary:
    """A run saved by insert_data --json; any problem with the file is one line of error."""
    try:
        with Path(path).expanduser().open(encoding="utf-8") as stream:
            return RunSummary.from_dict(json.load(stream))
    except OSError as error:
        raise CommandError(f"--from-json {path}: {error.strerror or error}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        # Not JSON, or JSON that is not a saved run (a missing key, an unexpected field).
        reason = f"missing {error}" if isinstance(error, KeyError) else " ".join(str(error).split())
        raise CommandError(
            f"--from-json {path}: not a run saved by insert_data --json ({reason})"
        ) from None
