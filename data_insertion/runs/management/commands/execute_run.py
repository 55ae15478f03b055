import argparse

from django.core.management.base import BaseCommand

from data_insertion.runs.recording import execute_run


class Command(BaseCommand):
    help = (
        "Carry out a queued run recorded by the dashboard or the API (they start this command "
        "in a background process); the outcome is recorded with the run."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run", type=int, help="the queued run's id")

    def handle(self, *args, **options) -> None:
        execute_run(options["run"])
