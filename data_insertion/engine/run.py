"""A run: users and products inserted at the same time, then orders that reference them.

run_simulation() is what every command calls. It is made of parts that also run apart: a
RunPlan every slice shares, run_phase() for one phase of one slice, feeding that slice's
RunTally, and summarise() for the tally of the whole (the merge of the slices' tallies).
"""

import base64
import itertools
import math
import platform
import sqlite3
import threading
import time
import uuid
import zlib
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

import django
from django.db import connections

from .. import reference_cache, services
from ..datasets import Dataset
from ..housekeeping import (
    count_existing_ids_by_database,
    count_rows,
    describe_databases,
    empty_databases,
    largest_id,
    model_class,
)
from ..identity import record_key
from ..models import Product, User
from ..results import InsertionResult, unexpected_failure
from ..summary import FaultSummary, RunSummary
from ..tallies import RunTally, build_summary
from ..topology import MODEL_DATABASES, shardmap
from ..topology.breakers import reset_breakers
from .committers import GroupCommits, PerRecordCommits, commit_strategy
from .config import WHOLE_RUN, SimulationConfig, Slice
from .faults import FaultRecord, injected
from .progress import ProgressCallback, sampling_progress
from .workers import run_workers, split

ResultCallback = Callable[[InsertionResult], None]
# An id this far above the largest one committed cannot exist during the run.
MISSING_ID_OFFSET = 1_000_000
# Users and products go in together; orders, which reference them, after.
PHASES = (("user", "product"), ("order",))


@dataclass(frozen=True)
class RunPlan:
    """What every slice of one run shares: its configuration, identity, records and clock."""

    config: SimulationConfig
    run_id: str
    started_at: str
    dataset: Dataset
    run_started: float  # perf_counter() when the run began: the tallies' time origin
    wall_started: float = 0.0  # time.time() then: other processes and machines find it from it
    # A spread run's number: its records carry their identity (identity.py); None in one process
    run_number: int | None = None

    def to_wire(self) -> dict:
        """The plan in JSON, for the executors of a spread run (from_wire on their side)."""
        config = asdict(self.config)
        return {
            "config": config,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "dataset": asdict(self.dataset),
            "wall_started": self.wall_started,
            "run_number": self.run_number,
        }

    @classmethod
    def from_wire(cls, data: dict) -> "RunPlan":
        """The plan as an executor sees it: the same run, its time origin on this machine's
        clock (as far as the machines' clocks agree)."""
        return cls(
            config=SimulationConfig.from_dict(data["config"]),
            run_id=data["run_id"],
            started_at=data["started_at"],
            dataset=Dataset(**data["dataset"]),
            run_started=time.perf_counter() - (time.time() - data["wall_started"]),
            wall_started=data["wall_started"],
            run_number=data["run_number"],
        )


@dataclass(frozen=True)
class References:
    """What orders may point at: the users and products committed in phase 1 (ascending ids),
    and ids that cannot exist during the run."""

    user_ids: array
    product_ids: array
    missing_user_id: int
    missing_product_id: int


def plan_run(config: SimulationConfig) -> RunPlan:
    run_id = uuid.uuid4().hex[:12]
    dataset = Dataset(
        records=config.records,
        tag=run_id[:8],
        seed=config.seed,
        invalid_ratio=config.invalid_ratio,
    )
    if not dataset.is_demo and config.seed is None:
        dataset = replace(dataset, seed=0)
    return RunPlan(
        config=config,
        run_id=run_id,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        dataset=dataset,
        run_started=time.perf_counter(),
        wall_started=time.time(),
    )


def run_simulation(
    config: SimulationConfig,
    on_result: ResultCallback | None = None,
    stop: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunSummary:
    """Run the simulation; `on_result` sees every verdict as it comes (from worker threads),
    `on_progress` a snapshot of the counts and rates once a second (from a thread of its own).

    Setting `stop` (Ctrl-C) makes workers take no new record; records already taken are
    committed or rolled back, and the summary counts what was done and says it was interrupted.
    """
    if config.spread:
        from .scaleout import run_spread  # it builds on this module

        return run_spread(config, stop, on_progress)
    stop = stop or threading.Event()
    reset_breakers()  # each run starts with every database's breaker closed
    reference_cache.take_counts()  # the shared cache's counts start with the run
    if config.fresh:
        empty_databases()
    rows_before = count_rows()
    plan = plan_run(config)
    tally = RunTally(plan.run_started, config.faults)
    output_errors: list[str] = []

    def report(results: list[InsertionResult]) -> None:
        if on_result is None or output_errors:
            return
        try:
            for result in results:
                on_result(result)
        except Exception as error:  # a closed pipe, a full disk: counting goes on
            output_errors.append(f"{type(error).__name__}: {error}")

    strategy = commit_strategy(config, tally.results_counter(also=report))
    accounts, orders = PHASES
    # The main thread holds no connection while the workers run: a fault may cut them all.
    connections.close_all()
    with (
        injected(config.faults, plan.run_started) as fault_records,
        sampling_progress(tally, plan.run_started, on_progress),
    ):
        run_phase(plan, accounts, WHOLE_RUN, strategy, stop)
        references = find_references(tally)
        connections.close_all()
        run_phase(plan, orders, WHOLE_RUN, strategy, stop, references)
    tally.models["order"].add_cache_counts(reference_cache.take_counts())
    return summarise(
        plan,
        tally,
        rows_before,
        interrupted=stop.is_set(),
        output_error=output_errors[0] if output_errors else None,
        fault_records=fault_records,
    )


def run_phase(
    plan: RunPlan,
    models: tuple[str, ...],
    slice_: Slice,
    strategy: PerRecordCommits | GroupCommits,
    stop: threading.Event,
    references: References | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Insert the slice's records of `models` from plan.config.threads workers per model, all
    released together; orders need the `references` phase 1 committed. `ready` is called once
    the workers are about to start (a spread run's processes wait for each other there)."""
    config = plan.config
    preparers = {
        model: _identified(_preparer(plan.dataset, model, references), plan.run_number, slice_)
        for model in models
    }
    if config.records:
        # Validating one record first compiles Django's lazy validators (the email regexes)
        # once here, instead of in every thread at once when the barrier opens.
        for prepare in preparers.values():
            prepare(0)
    if ready is not None:
        ready()
    with strategy.running(models):
        run_workers(
            {
                f"{_slice_prefix(slice_)}{model}-worker-{number + 1:03d}": strategy.worker(
                    model, _reporting_bugs(model, prepare, strategy), indexes, stop
                )
                for model, prepare in preparers.items()
                for number, indexes in enumerate(
                    split(slice_.indexes(config.records), config.threads)
                )
            },
            stop,
        )


def find_references(tally: RunTally) -> References:
    return References(
        user_ids=ascending(tally.models["user"].inserted_pks),
        product_ids=ascending(tally.models["product"].inserted_pks),
        missing_user_id=largest_id(User) + MISSING_ID_OFFSET,
        missing_product_id=largest_id(Product) + MISSING_ID_OFFSET,
    )


def references_to_wire(references: References) -> dict:
    """References in JSON for a spread run's executors: ids as zlib-compressed 8-byte arrays."""
    return {
        "user_ids": _ids_to_wire(references.user_ids),
        "product_ids": _ids_to_wire(references.product_ids),
        "missing_user_id": references.missing_user_id,
        "missing_product_id": references.missing_product_id,
    }


def references_from_wire(data: dict) -> References:
    return References(
        user_ids=_ids_from_wire(data["user_ids"]),
        product_ids=_ids_from_wire(data["product_ids"]),
        missing_user_id=data["missing_user_id"],
        missing_product_id=data["missing_product_id"],
    )


def _ids_to_wire(ids: array) -> str:
    return base64.b64encode(zlib.compress(ids.tobytes())).decode()


def _ids_from_wire(text: str) -> array:
    ids = array("q")
    ids.frombytes(zlib.decompress(base64.b64decode(text)))
    return ids


def summarise(
    plan: RunPlan,
    tally: RunTally,
    rows_before: dict[str, int],
    interrupted: bool,
    output_error: str | None = None,
    fault_records: dict[str, FaultRecord] | None = None,
) -> RunSummary:
    """The summary of a run from the tally of all its slices and the databases as they are."""
    dataset = plan.dataset
    fault_records = fault_records or {}
    faults = [
        FaultSummary(
            spec=fault.spec,
            description=fault.describe(),
            alias=fault.alias,
            kind=fault.kind,
            start_seconds=fault.start,
            end_seconds=None if fault.end == math.inf else fault.end,
            touched={
                model: dict(model_tally.fault_touched[index])
                for model, model_tally in tally.models.items()
                if model_tally.fault_touched[index]
            },
            **asdict(fault_records.get(fault.spec, FaultRecord())),
        )
        for index, fault in enumerate(tally.faults)
    ]
    return build_summary(
        run_id=plan.run_id,
        started_at=plan.started_at,
        duration_seconds=time.perf_counter() - plan.run_started,
        config={
            **asdict(plan.config),
            "faults": [fault.spec for fault in plan.config.faults],
            "seed": dataset.seed,
            "demo_data": dataset.is_demo,
        },
        environment=_environment(),
        databases=describe_databases(),
        tallies=tally.models,
        model_databases={model: database_label(model) for model in MODEL_DATABASES},
        rows_before=rows_before,
        rows_after=count_rows(),
        rows_found_by_database={
            model: count_existing_ids_by_database(model_class(model), model_tally.inserted_pks)
            for model, model_tally in tally.models.items()
        },
        interrupted=interrupted,
        output_error=output_error,
        faults=faults,
        reference_cache=tally.models["order"].cache_counts,
    )


def database_label(model: str) -> str:
    """The Database column: users_db, or users_db_0-3 for a model over four shards."""
    aliases = shardmap.model_aliases(model)
    if shardmap.layout(model) is None:
        return aliases[0]
    return f"{MODEL_DATABASES[model]}_0-{len(aliases) - 1}"


def ascending(ids: array) -> array:
    """The ids in ascending order, kept as compact as the tally keeps them: 8 bytes each, where
    a list of ten million ints takes 360 MB. Ids are handed out in commit order, so the tally's
    are nearly always ascending already and sorting is a check."""
    if all(earlier < later for earlier, later in itertools.pairwise(ids)):
        return ids
    return array(ids.typecode, sorted(ids))


def _preparer(
    dataset: Dataset, model: str, references: References | None
) -> Callable[[int], services.PreparedRecord]:
    if model == "user":
        return lambda index: services.prepare_user(**dataset.user(index))
    if model == "product":
        return lambda index: services.prepare_product(**dataset.product(index))
    assert references is not None, "orders need the users and products of phase 1"
    return lambda index: services.prepare_order(
        **dataset.order(
            index,
            references.user_ids,
            references.product_ids,
            references.missing_user_id,
            references.missing_product_id,
        )
    )


def _identified(
    prepare: Callable[[int], services.PreparedRecord], run_number: int | None, slice_: Slice
) -> Callable[[int], services.PreparedRecord]:
    """Records of a spread run carry their identity, so a redone slice skips what it committed."""
    if run_number is None:
        return prepare

    def prepare_identified(index: int) -> services.PreparedRecord:
        record = prepare(index)
        record.instance.record_key = record_key(run_number, slice_.number, index)
        return record

    return prepare_identified


def _slice_prefix(slice_: Slice) -> str:
    """Threads of a run cut into slices are named by slice too: s2-user-worker-001."""
    return "" if slice_.count == 1 else f"s{slice_.number + 1}-"


def _reporting_bugs(
    model: str,
    prepare: Callable[[int], services.PreparedRecord],
    strategy: PerRecordCommits | GroupCommits,
) -> Callable[[int], services.PreparedRecord | None]:
    def prepare_reporting_bugs(index: int) -> services.PreparedRecord | None:
        started = time.perf_counter()
        try:
            return prepare(index)
        except Exception as error:  # a bug, not bad data: report it, never drop the record
            strategy.record_results([unexpected_failure(model, error, started)])
            return None

    return prepare_reporting_bugs


def _environment() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "django": django.get_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(terse=True),
    }
