"""The JSON shapes of runs, snapshots and records: the API publishes them in its OpenAPI schema,
and the event stream and the dashboard's pages serialise through the same classes."""

from datetime import datetime
from typing import Any

from ninja import ModelSchema, Schema
from pydantic import ConfigDict, Field, field_validator, model_validator

from ..engine import SimulationConfig
from ..engine.config import check_spread
from ..engine.faults import check_supported, parse_fault
from ..management.options import (
    MAX_BATCH_SIZE,
    MAX_PROCESSES,
    MAX_RECORDS,
    MAX_SEED,
    MAX_SLICE_COUNT,
    MAX_THREADS,
)
from ..models import Order, Product, User

MAX_FAULTS = 20


class RunOptions(Schema):
    """A run's options, with the command line's bounds (insert_data --help)."""

    model_config = ConfigDict(extra="forbid")

    threads: int = Field(10, ge=1, le=MAX_THREADS, description="worker threads per model")
    records: int = Field(10, ge=0, le=MAX_RECORDS, description="records per model")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="generator seed")
    invalid_ratio: float = Field(0.1, ge=0, le=1, description="share made invalid on purpose")
    batch_size: int | None = Field(
        None, ge=1, le=MAX_BATCH_SIZE, description="group commit: records per transaction"
    )
    fresh: bool = Field(False, description="empty the three databases first")
    processes: int = Field(1, ge=1, le=MAX_PROCESSES, description="local processes to spread over")
    celery: bool = Field(False, description="spread over Celery workers (DS_CELERY_BROKER_URL)")
    slices: int | None = Field(
        None, ge=1, le=MAX_SLICE_COUNT, description="slices of a spread run (default: per process)"
    )
    faults: list[str] = Field(
        default_factory=list,
        max_length=MAX_FAULTS,
        description="faults to inject, as insert_data --fault: ALIAS:KIND:DURATION[@START]",
    )

    @field_validator("faults")
    @classmethod
    def faults_can_be_injected(cls, specs: list[str]) -> list[str]:
        check_supported([parse_fault(spec) for spec in specs])  # FaultSpecError is a ValueError
        return specs

    @model_validator(mode="after")
    def spread_one_way(self) -> "RunOptions":
        check_spread(self.processes, self.celery, self.slices)
        return self

    def to_config(self) -> SimulationConfig:
        options = self.model_dump()
        options["faults"] = tuple(parse_fault(spec) for spec in self.faults)
        return SimulationConfig(**options)


class DatabaseProgressOut(Schema):
    database: str
    committed: int
    rows_per_second: float = Field(description="in the interval since the previous snapshot")


class ModelProgressOut(Schema):
    model: str
    database: str
    committed: int
    rejected: int
    failed: int
    rows_per_second: float = Field(description="in the interval since the previous snapshot")
    p50_ms: float
    p95_ms: float
    p99_ms: float
    databases: list[DatabaseProgressOut] = Field(
        default_factory=list,
        description="per database of a model sharded over several; empty otherwise",
    )


class SnapshotOut(Schema):
    sequence: int
    elapsed_seconds: float
    models: list[ModelProgressOut]


class RunOut(Schema):
    id: int
    status: str = Field(description="queued, running, completed, failed or interrupted")
    lost: bool = Field(
        description="running, but no snapshot for over 10 s: its process died unrecorded"
    )
    heartbeat_at: datetime | None = Field(description="its start, then its latest snapshot")
    source: str = Field(description="command, dashboard or api")
    config: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    engine_run_id: str = Field(description="the run id the console, JSON and PDF show")
    stop_requested: bool
    rows_per_second: float | None = Field(description="rows committed per second, all models")
    p95_ms: float | None = Field(description="the largest p95 latency of the three models")
    verdict: str
    passed: bool | None
    error: str


class RunDetailOut(RunOut):
    progress: SnapshotOut | None = Field(description="the latest progress snapshot")
    summary: dict[str, Any] | None = Field(
        description="once finished: the run's summary, as insert_data --json writes it"
    )


class StartedRunOut(Schema):
    id: int
    status: str
    url: str


class DatabaseHealthOut(Schema):
    alias: str
    engine: str = Field(description="sqlite, postgresql or mysql")
    location: str = Field(description="a file, or host:port/name; never a password")
    reachable: bool
    error: str | None = Field(description="why it is unreachable")
    latency_ms: float | None = Field(description="SELECT 1, connecting included")
    tables: dict[str, int] = Field(description="rows per table")
    size_bytes: int | None
    breaker: str = Field(description="closed, open or half-open: this process's breaker")


class CacheHealthOut(Schema):
    configured: bool = Field(description="DS_CACHE_URL is set")
    location: str | None = Field(description="host:port/db; never a password")
    reachable: bool
    error: str | None
    latency_ms: float | None = Field(description="PING")
    hits: int | None = Field(description="Redis's keyspace hits since it started")
    misses: int | None = Field(description="Redis's keyspace misses since it started")
    hit_ratio: float | None
    breaker: str | None = Field(description="this process's cache breaker")


class HealthOut(Schema):
    healthy: bool = Field(description="every database reachable, and the cache if configured")
    databases: list[DatabaseHealthOut]
    cache: CacheHealthOut


class ErrorOut(Schema):
    detail: str


class ValidationErrorOut(Schema):
    detail: list[dict[str, Any]] = Field(
        description="each invalid field: loc names it, msg says why"
    )


class UserOut(ModelSchema):
    class Meta:
        model = User
        fields = ["id", "name", "email", "created_at"]


class ProductOut(ModelSchema):
    class Meta:
        model = Product
        fields = ["id", "name", "price", "created_at"]


class OrderOut(ModelSchema):
    class Meta:
        model = Order
        fields = ["id", "user_id", "product_id", "quantity", "created_at"]
