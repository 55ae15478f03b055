"""Runs are data: every run recorded with its progress and summary; the runs, compare_runs and
create_api_token commands; the progress sampler's snapshots."""

import io
import json
import sys
import threading

import pytest
from django.core.management import CommandError, call_command
from pypdf import PdfReader

from data_insertion.engine import SimulationConfig
from data_insertion.engine.launcher import start_background_process
from data_insertion.engine.progress import ProgressSampler
from data_insertion.models import Order, Product, User
from data_insertion.runs import recording
from data_insertion.runs.comparison import compare_summaries, parse_share
from data_insertion.runs.models import ApiToken, Run, RunSnapshot, RunSource, RunStatus
from data_insertion.runs.recording import RunRecorder, create_run, record_run, summary_of
from data_insertion.runs.tokens import create_token, is_valid_token
from data_insertion.tallies import RunTally
from tests.conftest import all_databases

pytestmark = all_databases


def run_command(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def test_insert_data_records_its_run_with_snapshots_and_summary():
    run_command("insert_data", records=300, seed=1, threads=4, verbosity=0)
    run = Run.objects.get()
    assert run.source == RunSource.COMMAND
    assert run.status == RunStatus.COMPLETED
    assert run.config["threads"] == 4 and run.config["records"] == 300
    assert run.started_at <= run.finished_at
    assert run.environment["pid"] and run.environment["python"]
    summary = summary_of(run)
    assert summary.ok and run.passed and run.verdict.startswith("PASS")
    assert run.engine_run_id == summary.run_id
    inserted = {model: summary.models[model].inserted for model in summary.models}
    assert inserted == {
        "user": User.objects.count(),
        "product": Product.objects.count(),
        "order": Order.objects.count(),
    }
    # The last snapshot is taken when the workers are done: it holds every verdict.
    last = run.snapshots.last().data
    assert {m["model"]: m["committed"] for m in last["models"]} == inserted
    assert {m["model"]: m["database"] for m in last["models"]} == {
        "user": "users_db",
        "product": "products_db",
        "order": "orders_db",
    }
    assert run.progress == last


def test_a_run_that_cannot_start_is_recorded_as_failed(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("no threads today")

    monkeypatch.setattr("data_insertion.runs.recording.run_simulation", refuse)
    with pytest.raises(RuntimeError):
        record_run(SimulationConfig(), source=RunSource.COMMAND)
    run = Run.objects.get()
    assert run.status == RunStatus.FAILED
    assert run.error == "no threads today"


def test_a_stop_requested_before_the_run_interrupts_it():
    run = create_run(SimulationConfig(records=200, seed=1), RunSource.API)
    Run.objects.filter(pk=run.pk).update(stop_requested=True)
    summary = record_run(SimulationConfig(records=200, seed=1), source=RunSource.API, run=run)
    run.refresh_from_db()
    assert summary.interrupted
    assert run.status == RunStatus.INTERRUPTED
    assert sum(model.attempted for model in summary.models.values()) == 0


def test_the_stop_flag_reaches_the_engine_at_the_next_snapshot():
    stop = threading.Event()
    run = create_run(SimulationConfig(), RunSource.DASHBOARD)
    recorder = RunRecorder(run, stop)
    sampler = ProgressSampler(RunTally(0.0), 0.0)
    recorder.record_snapshot(sampler.sample())
    assert not stop.is_set()
    Run.objects.filter(pk=run.pk).update(stop_requested=True)
    recorder.record_snapshot(sampler.sample())
    assert stop.is_set()


def test_snapshots_stay_bounded_however_long_the_run():
    run = create_run(SimulationConfig(), RunSource.COMMAND)
    recorder = RunRecorder(run, threading.Event(), max_snapshots=10)
    sampler = ProgressSampler(RunTally(0.0), 0.0)
    for _ in range(1000):
        recorder.record_snapshot(sampler.sample())
    kept = list(RunSnapshot.objects.filter(run=run).values_list("sequence", flat=True))
    assert 5 <= len(kept) <= 10
    # Thinning keeps the whole run, evenly: the first and the latest seconds are both there.
    assert kept[0] <= 128 and kept[-1] > 800
    run.refresh_from_db()
    assert run.progress["sequence"] == 1000


def test_runs_lists_newest_first_and_writes_a_finished_runs_json_and_pdf(output_dir):
    run_command("insert_data", verbosity=0)
    run_command("insert_data", records=50, seed=3, threads=2, verbosity=0)
    listing = run_command("runs")
    first, second = Run.objects.order_by("pk")
    assert listing.index(f"\n{second.pk:>5}  completed") < listing.index(f"\n{first.pk:>5}")
    assert "PASS" in listing
    out = run_command(
        "runs", str(first.pk), json=str(output_dir / "run.json"), pdf=str(output_dir / "run.pdf")
    )
    assert "PDF written" in out
    assert json.loads((output_dir / "run.json").read_text())["run_id"] == first.engine_run_id
    text = "".join(page.extract_text() for page in PdfReader(output_dir / "run.pdf").pages)
    assert first.engine_run_id in text


def test_runs_names_a_missing_run_in_one_line():
    with pytest.raises(CommandError, match="no run 42"):
        run_command("runs", "42")


def test_compare_runs_exits_1_on_a_regression_beyond_the_allowed_share():
    run_command("insert_data", records=100, seed=1, threads=2, verbosity=0)
    baseline = Run.objects.get()
    slower = baseline.summary
    for model in slower["summary"].values():
        model["rows_per_second"] /= 2
    candidate = Run.objects.create(
        source=RunSource.COMMAND,
        config=baseline.config,
        status=RunStatus.COMPLETED,
        summary=slower,
    )
    out = run_command("compare_runs", str(baseline.pk), str(baseline.pk))
    assert "No metric got worse by more than 10%" in out
    with pytest.raises(CommandError, match="3 of 12 metrics got worse by more than 10%") as error:
        run_command("compare_runs", str(baseline.pk), str(candidate.pk), max_regression=0.1)
    assert error.value.returncode == 1
    # Halving is a 50 % drop: allowed at 60 %.
    assert "No metric" in run_command(
        "compare_runs", str(baseline.pk), str(candidate.pk), "--max-regression", "60%"
    )


def test_comparison_marks_higher_latency_and_lower_throughput_as_regressions():
    run_command("insert_data", records=100, seed=1, threads=2, verbosity=0)
    baseline = summary_of(Run.objects.get())
    candidate = summary_of(Run.objects.get())
    candidate.models["user"].latency_ms.p95 = baseline.models["user"].latency_ms.p95 * 1.5
    candidate.models["order"].rows_per_second = baseline.models["order"].rows_per_second * 1.5
    rows = compare_summaries(baseline, candidate, max_regression=0.1)
    assert [(row.model, row.metric) for row in rows if row.regression] == [("user", "p95")]


@pytest.mark.parametrize("text, share", [("10%", 0.1), ("10", 0.1), ("2.5%", 0.025)])
def test_a_regression_share_is_a_percentage(text, share):
    assert parse_share(text) == pytest.approx(share)


def test_compare_runs_refuses_a_bad_percentage_in_one_line():
    with pytest.raises(CommandError, match="not a percentage"):
        run_command("compare_runs", "1", "2", "--max-regression", "ten")


def test_create_api_token_prints_a_token_it_stores_only_hashed():
    token = run_command("create_api_token", "ci").strip()
    stored = ApiToken.objects.get()
    assert stored.name == "ci"
    assert token not in stored.token_hash
    assert is_valid_token(token)
    assert not is_valid_token(token + "x")


def test_the_environment_token_is_valid_too(monkeypatch):
    monkeypatch.setenv("DS_API_TOKEN", "from-the-environment")
    assert is_valid_token("from-the-environment")
    assert not is_valid_token(create_token("other") + "!")


def test_a_background_process_reports_its_exit_and_error_output():
    exits = []
    start_background_process(
        [sys.executable, "-c", "import sys; sys.stderr.write('no database'); sys.exit(3)"],
        on_exit=lambda returncode, stderr: exits.append((returncode, stderr)),
        name="test-process",
    )
    for thread in threading.enumerate():
        if thread.name == "test-process-waiter":
            thread.join()
    assert exits == [(3, "no database")]


def test_a_run_whose_process_died_unrecorded_is_marked_failed_with_its_error():
    run = create_run(SimulationConfig(), RunSource.API)
    recording._process_exited(run.pk, 1, "Traceback ...\nImportError: no module\n")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error.endswith("ImportError: no module")
    finished = create_run(SimulationConfig(), RunSource.API)
    Run.objects.filter(pk=finished.pk).update(status=RunStatus.COMPLETED)
    recording._process_exited(finished.pk, 1, "late noise")
    assert Run.objects.get(pk=finished.pk).status == RunStatus.COMPLETED


def test_execute_run_carries_out_a_queued_run_as_the_background_process_does():
    run = create_run(SimulationConfig(records=80, seed=4, threads=2), RunSource.DASHBOARD)
    run_command("execute_run", str(run.pk))
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.summary["summary"]["user"]["inserted"] == User.objects.count()
