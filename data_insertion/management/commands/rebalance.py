import argparse

from django.core.management.base import CommandError

from data_insertion.housekeeping import DatabaseUnavailable
from data_insertion.management.options import bounded_int
from data_insertion.management.run_command import OneLineErrorCommand
from data_insertion.rebalance import RebalanceError, rebalance
from data_insertion.results import MODELS
from data_insertion.topology.shards import MAX_DATABASES


class Command(OneLineErrorCommand):
    help = (
        "Move logical shards online until --shards databases per model hold an equal share: "
        "copy, verify (row count and checksum per logical shard), switch the map, delete from "
        "the old database. Safe while insert_data runs; run it again to finish one killed."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--shards",
            type=bounded_int(1, MAX_DATABASES),
            required=True,
            help=f"databases per model afterwards, 1..{MAX_DATABASES}",
        )
        parser.add_argument(
            "--model", choices=MODELS, help="rebalance only this model (default: all three)"
        )

    def handle(self, *args, **options) -> None:
        models = [options["model"]] if options["model"] else list(MODELS)
        try:
            reports = [
                rebalance(model, options["shards"], lambda line: self.stderr.write(line))
                for model in models
            ]
        except (RebalanceError, DatabaseUnavailable) as error:
            raise CommandError(str(error)) from None
        for report in reports:
            self.stdout.write(report.line())
        self.stdout.write(self.style.SUCCESS("Rebalanced."))
