import argparse

from data_insertion.management.run_command import OneLineErrorCommand
from data_insertion.runs.tokens import create_token


class Command(OneLineErrorCommand):
    help = "Create a token for the REST API; it is shown once and stored only as a hash."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", help="what the token is for (shown in the admin)")

    def handle(self, *args, **options) -> None:
        token = create_token(options["name"])
        self.stderr.write("Keep this token now: it is not stored and cannot be shown again.")
        self.stdout.write(token)
