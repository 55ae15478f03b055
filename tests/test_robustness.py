"""What the review of the engine found: output that fails, threads the system refuses, two
runs at once. Each must end with every record counted and a clear verdict, never a hang."""

import threading
import types

import pytest

from data_insertion import simulation
from data_insertion.models import Order, User
from data_insertion.simulation import SimulationConfig, SimulationError, run_simulation
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
    monkeypatch.setattr(simulation, "threading", limited)
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
