"""The engine behind every command: concurrent inserts into three databases, then a summary.

For each model, `threads` workers are released together by a barrier so their inserts really
overlap; each record is inserted by the services in its own transaction on its model's
database. Users and products go first, concurrently; then orders, which reference the users
and products committed in this run. No other module starts a thread.
"""

import platform
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

import django
from django.core.management import call_command
from django.db import connections
from django.db.models import Max

from distributed_system.routers import MODEL_DATABASES

from . import services
from .datasets import Dataset
from .models import Order, Product, User
from .summary import MODELS, ModelTally, RunSummary, build_summary

MODEL_CLASSES = {"user": User, "product": Product, "order": Order}
# An id this far above the largest one committed cannot exist during the run.
MISSING_ID_OFFSET = 1_000_000


@dataclass(frozen=True)
class SimulationConfig:
    threads: int = 10
    records: int = 10
    seed: int | None = None
    invalid_ratio: float = 0.1
    fresh: bool = False


ResultCallback = Callable[[services.InsertionResult], None]


def migrate_databases() -> None:
    """Apply pending migrations to all four databases (nothing to do is quick)."""
    for alias in ("default", *MODEL_DATABASES.values()):
        call_command("migrate", database=alias, verbosity=0, interactive=False)


def describe_databases() -> dict[str, dict[str, str]]:
    """Each alias's engine and where it lives: a file, or a host and database; no password."""
    described = {}
    for alias in MODEL_DATABASES.values():
        connection = connections[alias]
        settings = connection.settings_dict
        if connection.vendor == "sqlite":
            location = str(settings["NAME"])
        else:
            host = settings.get("HOST") or "localhost"
            port = f":{settings['PORT']}" if settings.get("PORT") else ""
            location = f"{host}{port}/{settings['NAME']}"
        described[alias] = {"engine": connection.vendor, "location": location}
    return described


def count_rows() -> dict[str, int]:
    return {model: cls.objects.count() for model, cls in MODEL_CLASSES.items()}


def empty_databases() -> None:
    for cls in MODEL_CLASSES.values():
        cls.objects.all().delete()


def run_simulation(config: SimulationConfig, on_result: ResultCallback | None = None) -> RunSummary:
    run_id = uuid.uuid4().hex[:12]
    started_at = datetime.now(UTC)
    if config.fresh:
        empty_databases()
    rows_before = count_rows()
    dataset = Dataset(
        records=config.records,
        tag=run_id[:8],
        seed=config.seed,
        invalid_ratio=config.invalid_ratio,
    )
    if not dataset.is_demo and config.seed is None:
        dataset = replace(dataset, seed=0)
    run_started = time.perf_counter()
    tallies = {model: ModelTally(model, run_started) for model in MODELS}

    def record_result(result: services.InsertionResult) -> None:
        tallies[result.model].add(result)
        if on_result is not None:
            on_result(result)

    _run_concurrently(
        {
            "user": lambda index: services.insert_user(**dataset.user(index)),
            "product": lambda index: services.insert_product(**dataset.product(index)),
        },
        config,
        record_result,
    )
    user_ids = sorted(tallies["user"].inserted_pks)
    product_ids = sorted(tallies["product"].inserted_pks)
    missing_user_id = _largest_id(User) + MISSING_ID_OFFSET
    missing_product_id = _largest_id(Product) + MISSING_ID_OFFSET
    _run_concurrently(
        {
            "order": lambda index: services.insert_order(
                **dataset.order(index, user_ids, product_ids, missing_user_id, missing_product_id)
            )
        },
        config,
        record_result,
    )
    duration = time.perf_counter() - run_started
    return build_summary(
        run_id=run_id,
        started_at=started_at.isoformat(timespec="seconds"),
        duration_seconds=duration,
        config={**asdict(config), "seed": dataset.seed, "demo_data": dataset.is_demo},
        environment=_environment(),
        databases=describe_databases(),
        tallies=tallies,
        model_databases=MODEL_DATABASES,
        rows_before=rows_before,
        rows_after=count_rows(),
    )


def _run_concurrently(
    inserters: dict[str, Callable[[int], services.InsertionResult]],
    config: SimulationConfig,
    record_result: ResultCallback,
) -> None:
    """Start `config.threads` workers per model, release them together, wait for all."""
    workers = []
    barrier = threading.Barrier(config.threads * len(inserters))
    for model, insert in inserters.items():
        for number in range(config.threads):
            indexes = range(number, config.records, config.threads)
            workers.append(
                threading.Thread(
                    target=_work,
                    args=(barrier, model, insert, indexes, record_result),
                    name=f"{model}-worker-{number + 1:03d}",
                )
            )
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _work(
    barrier: threading.Barrier,
    model: str,
    insert: Callable[[int], services.InsertionResult],
    indexes: range,
    record_result: ResultCallback,
) -> None:
    try:
        barrier.wait()
        for index in indexes:
            started = time.perf_counter()
            try:
                result = insert(index)
            except Exception as error:  # a bug, not bad data: report it, never drop the record
                result = services.unexpected_failure(model, error, started)
            record_result(result)
    finally:
        # Connections are per thread: close this thread's, or their files stay open.
        connections.close_all()


def _largest_id(model) -> int:
    return model.objects.aggregate(largest=Max("id"))["largest"] or 0


def _environment() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "django": django.get_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(terse=True),
    }
