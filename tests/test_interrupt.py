"""Stopping a run (Ctrl-C) keeps what was committed, reports it, and exits 130."""

import io
import threading

import pytest
from django.core.management import CommandError, call_command

from data_insertion.engine import SimulationConfig, run_simulation
from data_insertion.models import Order, Product, User
from data_insertion.runs import recording
from data_insertion.runs.models import Run, RunStatus
from tests.conftest import all_databases

pytestmark = all_databases


@pytest.mark.parametrize("batch_size", [None, 20])
def test_a_stopped_run_counts_only_what_was_done_and_still_reconciles(batch_size):
    stop = threading.Event()
    seen = []

    def stop_after_some(result):
        seen.append(result)
        if len(seen) == 150:
            stop.set()

    summary = run_simulation(
        SimulationConfig(threads=8, records=5_000, seed=2, batch_size=batch_size),
        on_result=stop_after_some,
        stop=stop,
    )
    assert summary.interrupted and not summary.ok
    attempted = sum(m.attempted for m in summary.models.values())
    assert attempted == len(seen) < 15_000
    assert summary.reconciled
    assert summary.models["user"].inserted == User.objects.count()
    assert summary.models["product"].inserted == Product.objects.count()
    assert summary.models["order"].inserted == Order.objects.count()


def test_the_command_exits_130_after_printing_the_summary(monkeypatch):
    # The command runs the engine through the run's recorder.
    real_run_simulation = recording.run_simulation

    def interrupted_at_once(config, on_result, stop, on_progress):
        stop.set()  # as the Ctrl-C handler does
        return real_run_simulation(config, on_result=on_result, stop=stop, on_progress=on_progress)

    monkeypatch.setattr(recording, "run_simulation", interrupted_at_once)
    out = io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command("insert_data", records=1000, seed=1, verbosity=0, stdout=out)
    assert error.value.returncode == 130
    assert "Interrupted" in out.getvalue()
    assert "rows reconcile" in out.getvalue()
    assert Run.objects.get().status == RunStatus.INTERRUPTED
