"""What the review of the engine found: output that fails, threads the system refuses, two
runs at once. Each must end with every record counted and a clear verdict, never a hang."""

import threading
import types

import pytest
from django.db import IntegrityError, OperationalError, connections

from data_insertion import housekeeping
from data_insertion.engine import SimulationConfig, SimulationError, run_simulation, workers
from data_insertion.models import Order, User
from tests.conftest import all_databases
from tests.processes import manage

pytestmark = all_databases


@pytest.mark.parametrize("batch_size", [None, 50])
def test_output_that_fails_stops_output_not_the_run(batch_size):
    def broken_console(result):
        raise BrokenPipeError("the reader went away")

    summary = run_simulation(
        SimulationConfig(threads=6, records=600, seed=3, batch_size=batch_size),
        on_result=broken_console,
    )
    assert summary.output_error == "BrokenPipeError: the reader went away"
    assert all(model.attempted == 600 for model in summary.models.values())
    assert summary.unattempted == 0 and summary.reconciled
    assert summary.models["user"].inserted == User.objects.count()


def finish_within(seconds: float, target) -> dict:
    """Run target() in a thread; fail the test instead of hanging the suite."""
    outcome = {}

    def run():
        try:
            outcome["value"] = target()
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"no end within {seconds} s"
    return outcome


@pytest.mark.parametrize("batch_size", [None, 50])
def test_a_thread_the_system_refuses_ends_the_run_with_a_clear_error(monkeypatch, batch_size):
    class RefusedAfterFive(threading.Thread):
        started = 0

        def start(self):
            RefusedAfterFive.started += 1
            if RefusedAfterFive.started > 5:
                raise RuntimeError("can't start new thread")
            super().start()

    limited = types.SimpleNamespace(**vars(threading))
    limited.Thread = RefusedAfterFive
    monkeypatch.setattr(workers, "threading", limited)
    outcome = finish_within(
        60, lambda: run_simulation(SimulationConfig(threads=20, records=200, batch_size=batch_size))
    )
    assert isinstance(outcome.get("error"), SimulationError)
    assert "could not start" in str(outcome["error"])
    assert Order.objects.count() == 0


def test_two_runs_at_once_each_reconcile_their_own_rows(tmp_path):
    # Both on a fresh directory: their first migrations race too.
    runs = [
        threading.Thread(
            target=lambda i=i: results.__setitem__(
                i, manage(tmp_path, "insert_data", "--records", "2000", "-v", "0")
            )
        )
        for i in range(2)
    ]
    results = {}
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    for result in results.values():
        assert result.returncode == 0, result.stderr
        assert "rows reconcile" in result.stdout


def _migrate_failing_first_with(monkeypatch, error: Exception) -> list[str]:
    """Make the first `migrate` raise `error` (as a run losing the race does), then succeed."""
    calls = []

    def migrate(*args, **kwargs):
        calls.append(kwargs["database"])
        if len(calls) == 1:
            raise error

    monkeypatch.setattr(housekeeping, "call_command", migrate)
    monkeypatch.setattr(housekeeping, "_pending_migrations", lambda alias: True)  # a new file
    monkeypatch.setattr(housekeeping.time, "sleep", lambda seconds: None)
    return calls


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("UNIQUE constraint failed: django_content_type.app_label"),
        OperationalError("table django_migrations already exists"),
    ],
)
def test_a_run_that_loses_the_first_migration_race_tries_again(monkeypatch, error):
    calls = _migrate_failing_first_with(monkeypatch, error)
    housekeeping._migrate("default")
    assert calls == ["default", "default"]


def test_a_lock_while_opening_a_new_file_is_a_lost_race(monkeypatch):
    """Switching a new file to WAL is refused at once, without the busy timeout, while another
    process switches it: the connection never opened, so the run tries again."""
    connections["default"].close()
    calls = _migrate_failing_first_with(monkeypatch, OperationalError("database is locked"))
    housekeeping._migrate("default")
    assert calls == ["default", "default"]


def test_a_lock_that_outlasts_the_timeout_on_an_open_connection_is_reported(monkeypatch):
    connections["default"].ensure_connection()
    calls = _migrate_failing_first_with(monkeypatch, OperationalError("database is locked"))
    with pytest.raises(OperationalError):
        housekeeping._migrate("default")
    assert calls == ["default"]


def test_a_database_with_every_migration_applied_is_not_migrated_again(monkeypatch):
    housekeeping._migrate("default")  # whatever the test database lacked
    monkeypatch.setattr(housekeeping, "call_command", lambda *args, **kwargs: pytest.fail())
    housekeeping._migrate("default")
