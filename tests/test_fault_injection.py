"""Databases fail apart: a locked, slow or lost database holds up only the records that need
it. Each run as a user runs it (manage.py in a subprocess, on a temporary data directory);
what happened inside and outside a fault's window is read from the rows' own timestamps."""

import json
import sqlite3
import threading
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from data_insertion.topology.breakers import CircuitBreaker, CircuitOpen
from tests.conftest import all_databases
from tests.processes import manage
from tests.servers import Deployment

TABLES = {"user": "data_insertion_user", "product": "data_insertion_product"}


def created_between(data_dir: Path, model: str, start: datetime, end: datetime) -> int:
    """Rows of `model` committed (created_at) inside [start, end), from its SQLite file."""
    with closing(sqlite3.connect(data_dir / f"{model}s.db")) as connection:
        stamps = [
            datetime.fromisoformat(value).replace(tzinfo=UTC)
            for (value,) in connection.execute(f"SELECT created_at FROM {TABLES[model]}")
        ]
    return sum(start <= stamp < end for stamp in stamps)


def run_json(data_dir: Path, *args: str, env: dict | None = None):
    result = manage(
        data_dir, "insert_data", *args, "--json", str(data_dir / "r.json"), "-v", "0", env=env
    )
    document = json.loads((data_dir / "r.json").read_text())
    return result, document


def window(document: dict, spec: str) -> tuple[datetime, datetime]:
    fault = next(fault for fault in document["faults"] if fault["spec"] == spec)
    assert fault["error"] is None, fault["error"]
    return datetime.fromisoformat(fault["applied_at"]), datetime.fromisoformat(fault["removed_at"])


def every_record_judged_and_reconciled(document: dict, records: int) -> None:
    for model in document["summary"].values():
        assert model["attempted"] == records
        assert model["inserted"] + model["rejected"] + model["failed"] == records
        assert model["rows_found"] == model["inserted"]


def test_another_process_locking_users_holds_up_users_only(tmp_path):
    """Start-up does not wait on the lock, products commit while it is held, users after."""
    assert manage(tmp_path, "insert_data", "--records", "0", "-v", "0").returncode == 0
    holder = sqlite3.connect(tmp_path / "users.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process holds users.db's write lock
    locked_at = datetime.now(UTC)
    released = threading.Event()

    def release_after_five_seconds() -> None:
        time.sleep(5)
        released.time = datetime.now(UTC)
        holder.execute("ROLLBACK")
        released.set()

    releaser = threading.Thread(target=release_after_five_seconds)
    releaser.start()
    result, document = run_json(tmp_path, "--threads", "20", "--records", "20000")
    releaser.join()
    holder.close()
    assert result.returncode == 0, result.stderr
    assert all(model["failed"] == 0 for model in document["summary"].values())
    assert created_between(tmp_path, "product", locked_at, released.time) > 0
    assert created_between(tmp_path, "user", locked_at, released.time) == 0
    assert document["summary"]["user"]["inserted"] > 0  # users resumed after it
    every_record_judged_and_reconciled(document, 20000)


def test_latency_slows_its_database_only(tmp_path):
    result, document = run_json(
        tmp_path, "--threads", "20", "--records", "300", "--fault", "users_db:latency:5ms"
    )
    assert result.returncode == 0, result.stderr
    p50 = {name: model["latency_ms"]["p50"] for name, model in document["summary"].items()}
    assert p50["user"] >= 5
    assert p50["product"] < 5 and p50["order"] < 5
    assert document["faults"][0]["end_seconds"] is None  # the whole run
    assert "users_db latency +5 ms per write transaction" in result.stdout
    every_record_judged_and_reconciled(document, 300)


def test_a_lock_fault_holds_its_database_for_its_window_and_nothing_fails(tmp_path):
    spec = "users_db:lock:1500ms@200ms"
    result, document = run_json(tmp_path, "--threads", "10", "--records", "3000", "--fault", spec)
    assert result.returncode == 0, result.stderr
    start, end = window(document, spec)
    assert created_between(tmp_path, "user", start, end) == 0
    assert all(model["failed"] == 0 for model in document["summary"].values())
    every_record_judged_and_reconciled(document, 3000)


def test_a_database_down_fails_only_the_records_that_need_it_naming_it(tmp_path):
    spec = "products_db:down:1s@300ms"
    result, document = run_json(tmp_path, "--threads", "20", "--records", "5000", "--fault", spec)
    assert result.returncode == 1
    assert "valid records failed to commit" in result.stderr
    summary = document["summary"]
    assert summary["user"]["failed"] == 0
    assert summary["product"]["failed"] > 0
    for model in summary.values():
        for reason in model["reasons"]:
            if reason["status"] == "failed":
                assert reason["message"].startswith("products_db: "), reason
    start, end = window(document, spec)
    assert created_between(tmp_path, "product", start, end) == 0
    # The breaker opened after the first failures: most failed at once.
    assert summary["product"]["failed_fast"] > 0
    assert "failed fast (circuit open)" in result.stdout
    fault = document["faults"][0]
    assert fault["touched"]["product"]["failed"] == summary["product"]["failed"]
    every_record_judged_and_reconciled(document, 5000)


@pytest.mark.parametrize(
    "spec, problem",
    [
        ("users_db:lock", "is not ALIAS:KIND:DURATION[@START]"),
        ("sales_db:lock:1s", "no database 'sales_db'"),
        ("users_db:melt:1s", "no fault 'melt'"),
        ("users_db:lock:soon", "is not a duration like 500ms"),
        ("users_db:latency:5ms@1s", "latency lasts the whole run"),
        ("users_db:down:90m", "longer than an hour"),
        ("users_db:down:1s@", "is not a duration like 500ms"),
    ],
)
def test_a_bad_fault_spec_is_one_line_and_nothing_runs(tmp_path, spec, problem):
    result = manage(tmp_path, "insert_data", "--fault", spec)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--fault" in lines[0] and problem in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_fails_fast_then_a_probe_closes_it():
    clock = Clock()
    breaker = CircuitBreaker("users_db", threshold=3, cool_down=1.0, clock=clock)
    for _ in range(2):
        breaker.admit()
        breaker.failed(Exception("database is locked"))
    breaker.admit()  # two failures: still closed
    breaker.failed(Exception("database is locked"))
    assert breaker.state == breaker.OPEN
    with pytest.raises(CircuitOpen, match="users_db: failing fast.*database is locked"):
        breaker.admit()
    clock.now = 1.0
    breaker.admit()  # the probe goes through ...
    with pytest.raises(CircuitOpen):
        breaker.admit()  # ... alone
    breaker.succeeded()
    assert breaker.state == breaker.CLOSED and breaker.failures == 0
    breaker.admit()


def test_a_failed_probe_opens_the_breaker_again():
    clock = Clock()
    breaker = CircuitBreaker("products_db", threshold=1, cool_down=2.0, clock=clock)
    breaker.failed(Exception("down"))
    clock.now = 2.0
    breaker.admit()
    breaker.failed(Exception("still down"))
    assert breaker.state == breaker.OPEN and breaker.times_opened == 2
    clock.now = 3.9
    with pytest.raises(CircuitOpen, match="still down"):
        breaker.admit()


def created_on_server(on, name: str, table: str, start: datetime, end: datetime) -> int:
    return on.execute(
        f"SELECT count(*) FROM {table} WHERE created_at >= %s AND created_at < %s",
        (start, end),
        database=name,
    )[0][0]


def run_on_postgres(postgres, tmp_path: Path, spec: str, records: int):
    """insert_data with every model on PostgreSQL and `spec` injected: the deployment, the
    finished process and its JSON summary."""
    deployment = Deployment(tmp_path)
    for alias in ("users_db", "products_db", "orders_db"):
        deployment.place(alias, postgres)
    finished = deployment.manage(
        "insert_data", "--threads", "10", "--records", str(records), "--fault", spec,
        "--json", str(tmp_path / "r.json"), "-v", "0",
    )  # fmt: skip
    return deployment, finished, json.loads((tmp_path / "r.json").read_text())


def test_a_lock_on_postgresql_holds_its_table_for_the_window_and_nothing_fails(postgres, tmp_path):
    spec = "users_db:lock:1500ms@300ms"
    _, finished, document = run_on_postgres(postgres, tmp_path, spec, 4000)
    assert finished.returncode == 0, finished.stderr
    summary = document["summary"]
    # On a server a row's created_at is stamped before its INSERT waits for the table, so the
    # window shows in the waits: the users in flight were held until the lock went.
    start, end = window(document, spec)
    assert document["faults"][0]["touched"]["user"]["inserted"] > 0
    assert summary["user"]["latency_ms"]["max"] >= 0.8 * (end - start).total_seconds() * 1000
    assert summary["product"]["latency_ms"]["max"] < summary["user"]["latency_ms"]["max"]
    assert all(model["failed"] == 0 for model in summary.values())
    every_record_judged_and_reconciled(document, 4000)


def test_postgresql_down_cuts_its_connections_and_every_record_still_gets_a_verdict(
    postgres, tmp_path
):
    spec = "products_db:down:1500ms@300ms"
    deployment, finished, document = run_on_postgres(postgres, tmp_path, spec, 3000)
    assert finished.returncode in (0, 1), finished.stderr
    assert "Traceback" not in finished.stderr
    start, end = window(document, spec)
    on, name = deployment.databases["products_db"]
    assert created_on_server(on, name, "data_insertion_product", start, end) == 0
    summary = document["summary"]
    assert summary["user"]["failed"] == 0
    for model in summary.values():
        for reason in model["reasons"]:
            if reason["status"] == "failed":
                assert reason["message"].startswith("products_db: "), reason
    every_record_judged_and_reconciled(document, 3000)
    # The database takes connections again afterwards, from other processes too.
    assert on.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (name,)) == [
        (True,)
    ]
    after = deployment.manage("insert_data", "--records", "300", "-v", "0")
    assert after.returncode == 0, after.stderr


def test_the_benchmark_injects_faults_into_the_engines_runs(tmp_path):
    result = manage(
        tmp_path, "benchmark", "--records", "300", "--threads", "4", "--scaling-threads", "",
        "--fault", "users_db:latency:1ms",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Faults injected into every engine run" in result.stdout
    assert "users_db latency +1 ms per write transaction" in result.stdout
    assert "a/c = " in result.stdout


@all_databases
def test_a_probe_that_fails_on_another_database_gives_its_turn_back():
    """orders_db's breaker lets one order through as its probe; the order fails on its read of
    products_db. That says nothing of orders_db: the next order is the probe, and it closes
    the breaker (before, the breaker stayed half-open and failed every later order)."""
    from django.db import OperationalError

    from data_insertion.topology import backend
    from data_insertion.topology.breakers import breaker

    orders = backend("orders_db")
    orders_breaker = breaker("orders_db")
    for _ in range(orders_breaker.threshold):
        orders_breaker.failed(Exception("orders_db: database is locked"))
    orders_breaker.opened_at -= orders_breaker.cool_down  # the cool-down is over
    products_failure = OperationalError("products_db: unable to open database file")
    products_failure.database = "products_db"
    with pytest.raises(OperationalError), orders.write_transaction():
        raise products_failure
    assert orders_breaker.state == orders_breaker.HALF_OPEN
    with orders.write_transaction():
        pass  # the next probe goes through
    assert orders_breaker.state == orders_breaker.CLOSED


def test_two_faults_of_one_kind_on_one_database_at_once_are_refused(tmp_path):
    result = manage(
        tmp_path, "insert_data",
        "--fault", "products_db:down:3s@100ms", "--fault", "products_db:down:500ms@1s",
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "overlaps" in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_fault_the_run_never_reached_says_so(tmp_path):
    result, document = run_json(tmp_path, "--fault", "users_db:down:2s@30s")
    assert result.returncode == 0, result.stderr
    assert "users_db down for 2 s from 30 s (30 s-32 s): not reached (the run ended first)" in (
        result.stdout
    )
    assert document["faults"][0]["applied_at"] is None
