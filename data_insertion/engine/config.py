"""What a run is asked to do, and how it splits into slices that run apart and merge."""

from collections.abc import Callable
from dataclasses import dataclass

from .faults import Fault


@dataclass(frozen=True)
class SimulationConfig:
    threads: int = 10
    records: int = 10
    seed: int | None = None
    invalid_ratio: float = 0.1
    fresh: bool = False
    # None: each worker commits its own records, one transaction per record.
    # N: group commit, one writer per database committing up to N records per transaction.
    batch_size: int | None = None
    # Faults injected into single databases during the run (engine/faults.py).
    faults: tuple[Fault, ...] = ()
    # Spread over this many local processes, or over Celery workers (engine/scaleout.py), in
    # `slices` slices (None: one per process; with Celery, a few per worker online).
    processes: int = 1
    celery: bool = False
    slices: int | None = None

    @property
    def spread(self) -> bool:
        """Whether the run is split over several processes or machines."""
        return self.processes > 1 or self.celery

    @classmethod
    def from_dict(cls, data: dict) -> "SimulationConfig":
        """A configuration from its JSON form (dataclasses.asdict: faults as plain objects)."""
        faults = tuple(Fault(**fault) for fault in data.get("faults", ()))
        return cls(**{**data, "faults": faults})

    def cut(self, count: int) -> list["Slice"]:
        """The run cut into `count` slices that together hold every record once."""
        return [Slice(number, count) for number in range(count)]


def check_spread(
    processes: int, celery: bool, slices: int | None, name: Callable[[str], str] = str
) -> None:
    """Refuse a combination of options a spread run cannot honour: ValueError, each option
    named by `name` (`--celery` on the command line, `celery` in the API)."""
    if celery and processes > 1:
        raise ValueError(
            f"{name('celery')} and {name('processes')} cannot be combined: Celery workers are "
            "the processes (start as many as you want)"
        )
    if slices is not None and not (celery or processes > 1):
        raise ValueError(
            f"{name('slices')} needs {name('processes')} N (N > 1) or {name('celery')}"
        )


@dataclass(frozen=True)
class Slice:
    """Every `count`-th record of each model, from the `number`-th: a share of a run that one
    executor runs (a whole run is the one slice 0 of 1). Slices run apart; their tallies merge
    (summary.RunTally) into the tally of the whole."""

    number: int = 0
    count: int = 1

    def indexes(self, records: int) -> range:
        return range(self.number, records, self.count)


WHOLE_RUN = Slice()
