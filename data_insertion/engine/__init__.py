"""The engine behind every command: concurrent inserts into the databases, then a summary.

config.py says what a run is and how it splits into slices; run.py runs its phases (users and
products together, then orders); committers.py holds the two commit strategies (a transaction
per record, or group commit through a writer per database); workers.py starts the threads,
the only module that does.
"""

from .committers import commit_strategy
from .config import SimulationConfig, Slice
from .run import (
    PHASES,
    RunPlan,
    ascending,
    find_references,
    plan_run,
    run_phase,
    run_simulation,
    summarise,
)
from .workers import SimulationError, run_workers

__all__ = [
    "PHASES",
    "RunPlan",
    "SimulationConfig",
    "SimulationError",
    "Slice",
    "ascending",
    "commit_strategy",
    "find_references",
    "plan_run",
    "run_phase",
    "run_simulation",
    "run_workers",
    "summarise",
]
