"""The command behind insert_data, simulate_insertions and generate_pdf_report: it reads top to
bottom as check the outputs, migrate, run the engine while reporting each verdict, print the
summary, write the JSON, and exit with the summary's verdict."""

import argparse
import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from ..console import summary_lines
from ..engine import SimulationError
from ..engine.faults import FaultSpecError, check_supported, end_outages
from ..housekeeping import DatabaseUnavailable, migrate_databases
from ..runs.models import RunSource
from ..runs.recording import record_run
from ..summary import INTERRUPTED_EXIT_CODE, RunSummary
from .options import (
    STANDARD_OUTPUT,
    add_run_options,
    check_output_path,
    check_scale_out,
    run_config,
)
from .output import RECORD_LINES_AT_VERBOSITY_1, RunOutput, write_atomically


class OneLineErrorCommand(BaseCommand):
    """A bad option is one line ("...: error: argument --threads: 0 is outside 1..1,000"),
    not the usage block first: the message names the option and its range."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> argparse.ArgumentParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.print_usage = lambda file=None: None
        return parser


class RunCommand(OneLineErrorCommand):
    help = (
        "Insert users, products and orders from many threads at once into three databases, "
        "validate every record, and print what was committed."
    )
    # Django's system checks import the URLconf (the API, its schemas): 0.3 s of every run's
    # start, measured, for checks that `manage.py check`, `migrate` and the server run anyway.
    requires_system_checks = []

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_options(parser)

    def handle(self, *args, **options) -> None:
        # Every output path is checked before the run: a bad one costs nothing.
        json_path = check_output_path(options["json"], "--json") if options["json"] else None
        details_path = (
            check_output_path(options["details"], "--details") if options["details"] else None
        )
        # "-" sends the JSON or the details to standard output, and the console to stderr.
        machine_output = self.stdout
        if STANDARD_OUTPUT in (options["json"], options["details"]):
            if options["json"] == options["details"]:
                raise CommandError("--json - and --details - cannot both take standard output")
            # A plain wrapper: Django's stderr one would style every line as an error.
            self.stdout = OutputWrapper(self.stderr._out)
        summary = self.run(options, details_path, machine_output)
        if options["json"]:
            payload = json.dumps(summary.to_dict(), indent=2, ensure_ascii=False)
            if json_path is None:
                machine_output.write(payload)
            else:
                try:
                    write_atomically(json_path, payload.encode(errors="backslashreplace"))
                except OSError as error:
                    raise CommandError(
                        f"--json {options['json']}: {error.strerror or error}"
                    ) from None
        self.finish(summary, options)

    def run(self, options: dict, details_path, machine_output) -> RunSummary:
        """Migrate, run the engine (recorded, so the dashboard and the API see it) and report
        each verdict as it comes; print the summary."""
        check_scale_out(options)
        config = run_config(options)
        try:
            check_supported(config.faults)
        except FaultSpecError as error:
            raise CommandError(f"--fault {error}") from None
        try:
            migrate_databases()
        except DatabaseUnavailable as error:
            raise CommandError(f"cannot use {error}") from None
        stop = threading.Event()
        output = RunOutput(
            self,
            options["verbosity"],
            total=3 * config.records,
            details_path=details_path,
            machine_output=machine_output if options["details"] == STANDARD_OUTPUT else None,
        )
        with output, stop_on_interrupt(stop, self.stderr):
            try:
                summary = record_run(
                    config,
                    source=RunSource.COMMAND,
                    on_result=output,
                    stop=stop,
                    # A spread run's verdicts stay in its processes: progress comes by snapshot.
                    on_progress=output.show_snapshot if config.spread else None,
                )
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
        """Exit with the summary's verdict: its problems in one line, or success."""
        if summary.problems:
            raise CommandError(summary.verdict, returncode=summary.exit_code)
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
        # Uncommitted transactions die with the process: the databases roll them back. An
        # injected outage does not: it ends first.
        end_outages()
        stderr.write("\nAborted: transactions in flight were rolled back; nothing is summarised.")
        stderr.flush()
        os._exit(INTERRUPTED_EXIT_CODE)

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
