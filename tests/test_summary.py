"""The summary: tallies of a run's slices merge into the tally of the whole, and its problems are
the one verdict that the console, the PDF and the exit status render."""

import io
import json
import random
import subprocess
import sys
import threading

import pytest
from django.core.management import CommandError, call_command

from data_insertion.engine import (
    PHASES,
    SimulationConfig,
    commit_strategy,
    find_references,
    plan_run,
    run_phase,
    run_simulation,
    summarise,
)
from data_insertion.housekeeping import count_rows
from data_insertion.results import MODELS, InsertionResult, Status
from data_insertion.tallies import RunTally, build_summary
from tests.conftest import all_databases
from tests.processes import PROJECT

REASONS = {
    Status.REJECTED: {"email": ["Enter a valid email address."]},
    Status.FAILED: {"database": ["database is locked"]},
    Status.INSERTED: {},
}


def results(count: int, seed: int) -> list[InsertionResult]:
    draw = random.Random(seed)
    made = []
    for number in range(count):
        model = MODELS[number % 3]
        status = draw.choice(list(Status))
        made.append(
            InsertionResult(
                model=model,
                status=status,
                pk=number + 1 if status == Status.INSERTED else None,
                errors=REASONS[status],
                thread=f"{model}-worker-{draw.randrange(1, 9):03d}",
                latency=draw.lognormvariate(-6, 1),
            )
        )
    return made


def summary_of(tally: RunTally) -> dict:
    summary = build_summary(
        run_id="r",
        started_at="2025-05-04T12:30:00+00:00",
        duration_seconds=1.0,
        config={"threads": 8, "records": 1000},
        environment={},
        databases={},
        tallies=tally.models,
        model_databases={model: f"{model}s_db" for model in MODELS},
        rows_before=dict.fromkeys(MODELS, 0),
        rows_after=dict.fromkeys(MODELS, 0),
    )
    return {
        model: {
            "counts": (m.attempted, m.inserted, m.rejected, m.failed),
            "latency": m.latency_ms,
            "histogram": m.latency_histogram,
            "threads": m.threads,
            "reasons": m.reasons,
            "records": len(m.records),
        }
        for model, m in summary.models.items()
    }


def test_merging_the_tallies_of_two_halves_gives_the_tally_of_the_whole():
    made = results(3000, seed=11)
    whole, first, second = RunTally(0.0), RunTally(0.0), RunTally(0.0)
    for result in made:
        whole.add_all([result])
    for result in made[:1700]:
        first.add_all([result])
    for result in made[1700:]:
        second.add_all([result])
    merged = RunTally.merged([first, second], run_started=0.0)
    assert summary_of(merged) == summary_of(whole)
    for model in MODELS:
        assert sorted(merged.models[model].inserted_pks) == sorted(whole.models[model].inserted_pks)


@all_databases
def test_a_run_cut_into_two_slices_commits_what_the_whole_run_commits():
    config = SimulationConfig(threads=3, records=400, seed=21)
    whole = run_simulation(config)
    plan = plan_run(config)
    rows_before = count_rows()
    halves = [RunTally(plan.run_started) for _ in range(2)]
    strategies = [commit_strategy(config, half.add_all) for half in halves]
    stop = threading.Event()
    accounts, orders = PHASES
    for slice_, strategy in zip(config.cut(2), strategies, strict=True):
        run_phase(plan, accounts, slice_, strategy, stop)
    references = find_references(RunTally.merged(halves, plan.run_started))
    for slice_, strategy in zip(config.cut(2), strategies, strict=True):
        run_phase(plan, orders, slice_, strategy, stop, references)
    merged = summarise(plan, RunTally.merged(halves, plan.run_started), rows_before, False)
    for model in MODELS:
        ours, theirs = merged.models[model], whole.models[model]
        assert (ours.attempted, ours.inserted, ours.rejected, ours.failed) == (
            theirs.attempted,
            theirs.inserted,
            theirs.rejected,
            theirs.failed,
        )
        assert {(r.field, r.message, r.count) for r in ours.reasons} == {
            (r.field, r.message, r.count) for r in theirs.reasons
        }
        assert len(ours.threads) == 2 * config.threads  # s1-user-worker-001, s2-...
    assert merged.reconciled and merged.ok
    # The same merge from the tallies' wire form (what processes and machines send) gives the
    # same summary, times, histograms and kept records included.
    over_the_wire = RunTally(plan.run_started)
    for half in halves:
        over_the_wire.add_wire(json.loads(json.dumps(half.to_wire())))
    rebuilt = summarise(plan, over_the_wire, rows_before, False)
    for model in MODELS:
        ours, theirs = rebuilt.models[model], merged.models[model]
        assert ours.latency_ms == theirs.latency_ms
        assert ours.threads == theirs.threads
        # (the later summary is a moment longer: its timeline may have more, empty, points)
        assert ours.timeline[: len(theirs.timeline)] == theirs.timeline
        assert ours.records == theirs.records
        assert ours.wall_seconds == pytest.approx(theirs.wall_seconds, abs=1e-3)
        assert (ours.inserted, ours.rows_found) == (theirs.inserted, theirs.rows_found)


@all_databases
@pytest.mark.parametrize("ratio, inserted", [(1.0, 0), (0.0, 300)])
def test_the_invalid_ratio_means_what_it_says_at_both_ends(ratio, inserted):
    summary = run_simulation(SimulationConfig(threads=4, records=300, invalid_ratio=ratio))
    for model in summary.models.values():
        assert model.inserted == inserted, model.model
        assert model.rejected == 300 - inserted, model.model


def test_importing_the_report_does_not_import_the_database_stack():
    """A saved run renders with summary and results alone: no services, persistence or
    transaction code comes with the report package."""
    code = (
        "import sys, data_insertion.report, data_insertion.console\n"
        "loaded = [m for m in sys.modules if m.startswith('data_insertion.') or m == 'django.db']\n"
        "print(' '.join(sorted(loaded)))"
    )
    finished = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True
    )
    loaded = set(finished.stdout.split())
    assert "data_insertion.summary" in loaded and "data_insertion.results" in loaded
    for module in (
        "data_insertion.services",
        "data_insertion.persistence",
        "data_insertion.topology",
        "data_insertion.engine",
        "django.db",
    ):
        assert module not in loaded


@all_databases
def test_the_console_the_pdf_and_the_exit_status_render_one_verdict(monkeypatch, output_dir):
    from django.db import OperationalError

    from data_insertion import services
    from data_insertion.summary import RunSummary
    from tests.test_report import pdf_text

    real_insert_rows = services.insert_rows

    def broken_products(instances, alias):
        if instances[0]._meta.model_name == "product":
            raise OperationalError("disk I/O error")  # not transient: failed at once
        real_insert_rows(instances, alias)

    monkeypatch.setattr(services, "insert_rows", broken_products)
    json_path, pdf_path = output_dir / "run.json", output_dir / "run.pdf"
    with pytest.raises(CommandError) as error:
        call_command(
            "generate_pdf_report",
            json=str(json_path),
            output=str(pdf_path),
            verbosity=0,
            stdout=io.StringIO(),
        )
    summary = RunSummary.from_dict(json.loads(json_path.read_text()))
    assert [problem.message for problem in summary.problems] == ["9 valid records failed to commit"]
    assert str(error.value) == summary.verdict == "FAIL: 9 valid records failed to commit."
    assert error.value.returncode == summary.exit_code == 1
    assert summary.verdict in pdf_text(pdf_path.read_bytes())


def test_a_spread_runs_processes_and_attempts_round_trip_through_json():
    from data_insertion.summary import RunSummary
    from tests.test_report import spread_summary

    summary = spread_summary()
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["scale_out"]["transport"] == "processes"
    assert data["scale_out"]["attempts"][3] == {
        "phase": 1,
        "slice": 3,
        "attempt": 2,
        "executor": "host-b:102",
        "state": "finished",
        "inserted": 6_000,
        "found_committed": 5_720,
        "wall_seconds": 1.5,
        "reason": "",
    }
    again = RunSummary.from_dict(data)
    assert again.scale_out == summary.scale_out
    assert again.to_dict() == data


@all_databases
def test_a_one_process_runs_json_has_no_scale_out(output_dir):
    from data_insertion.summary import RunSummary

    json_path = output_dir / "run.json"
    call_command(
        "insert_data", records=10, threads=2, json=str(json_path), verbosity=0, stdout=io.StringIO()
    )
    data = json.loads(json_path.read_text())
    assert "scale_out" in data and data["scale_out"] is None
    assert RunSummary.from_dict(data).scale_out is None
