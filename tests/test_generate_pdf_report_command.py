"""generate_pdf_report end to end: the PDF holds the run's numbers and the rows in each database."""

import json
import os
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pypdf import PdfReader

from data_insertion.management.run_command import RunCommand
from data_insertion.models import Order, Product, User
from data_insertion.summary import RunSummary
from tests.conftest import all_databases
from tests.test_report import pdf_text

MODEL_CLASSES = {"user": User, "product": Product, "order": Order}


@all_databases
def test_report_shows_the_runs_numbers_and_the_rows_in_each_database(output_dir):
    pdf_path, json_path = output_dir / "report.pdf", output_dir / "run.json"
    stdout = StringIO()
    call_command(
        "generate_pdf_report",
        threads=4,
        records=60,
        seed=11,
        invalid_ratio=0.2,
        output=str(pdf_path),
        json=str(json_path),
        verbosity=0,
        stdout=stdout,
    )
    summary = RunSummary.from_dict(json.loads(json_path.read_text(encoding="utf-8")))
    pdf = pdf_path.read_bytes()
    text = pdf_text(pdf)
    pages = len(PdfReader(pdf_path).pages)
    assert pages >= 3
    assert f"Page {pages} of {pages}" in text
    assert "Threads per model 4 " in text
    for name, model in summary.models.items():
        assert model.rows_after == MODEL_CLASSES[name].objects.count()
        assert (
            f"{name} {model.database} {model.rows_before:,} {model.rows_after:,} "
            f"{model.rows_added:,} {model.inserted:,} {model.rows_found:,} yes"
        ) in text
        assert (
            f"{name} {model.database} {model.attempted:,} {model.inserted:,} {model.rejected:,} "
            f"{model.failed:,}"
        ) in text
        assert f"{model.latency_ms.p95:.2f} {model.latency_ms.p99:.2f}" in text
    assert f"Report written to {pdf_path} ({pages} pages," in stdout.getvalue()
    assert "Data insertion completed" in stdout.getvalue()


@all_databases
def test_a_run_without_invalid_records_reports_no_rejections(output_dir):
    pdf_path = output_dir / "clean.pdf"
    call_command(
        "generate_pdf_report",
        threads=3,
        records=30,
        seed=1,
        invalid_ratio=0.0,
        output=str(pdf_path),
        verbosity=0,
        stdout=StringIO(),
    )
    assert "no rejections and no failures" in pdf_text(pdf_path.read_bytes()).lower()


@all_databases
def test_from_json_renders_a_saved_run_without_running_again(output_dir):
    json_path, pdf_path = output_dir / "run.json", output_dir / "saved.pdf"
    call_command(
        "insert_data", records=20, threads=2, seed=3, json=str(json_path), stdout=StringIO()
    )
    rows = {name: cls.objects.count() for name, cls in MODEL_CLASSES.items()}
    stdout = StringIO()
    call_command(
        "generate_pdf_report", from_json=str(json_path), output=str(pdf_path), stdout=stdout
    )
    assert {name: cls.objects.count() for name, cls in MODEL_CLASSES.items()} == rows
    summary = RunSummary.from_dict(json.loads(json_path.read_text(encoding="utf-8")))
    text = pdf_text(pdf_path.read_bytes())
    assert f"Run {summary.run_id}" in text
    for name, model in summary.models.items():
        assert (
            f"{name} {model.database} 0 {rows[name]:,} {rows[name]:,} {model.inserted:,} "
            f"{rows[name]:,} yes"
        ) in text
    assert "Report written to" in stdout.getvalue()
    assert "Data insertion completed" not in stdout.getvalue()


@pytest.fixture
def no_simulation(monkeypatch):
    """Fails the test if the command starts a run."""

    def run(self, *args):
        raise AssertionError("the simulation ran")

    monkeypatch.setattr(RunCommand, "run", run)


def one_line_error(*args, **options) -> str:
    with pytest.raises(CommandError) as raised:
        call_command("generate_pdf_report", *args, stdout=StringIO(), **options)
    message = str(raised.value)
    assert "\n" not in message
    assert raised.value.returncode != 0
    return message


def test_an_output_in_a_missing_directory_fails_before_running(output_dir, no_simulation):
    message = one_line_error(output=str(output_dir / "missing" / "report.pdf"))
    assert message.startswith("--output") and "does not exist" in message
    assert list(output_dir.iterdir()) == []


def test_an_output_that_is_a_directory_fails_before_running(output_dir, no_simulation):
    message = one_line_error(output=str(output_dir))
    assert message.startswith("--output") and "is a directory" in message
    assert list(output_dir.iterdir()) == []


def test_an_unwritable_output_fails_before_running(output_dir, no_simulation, monkeypatch):
    # As root every directory is writable, so the permission check is what is simulated.
    writable = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != output_dir and writable(path, mode)
    )
    message = one_line_error(output=str(output_dir / "report.pdf"))
    assert message.startswith("--output") and "not writable" in message
    assert list(output_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "No such file or directory"),
        ("{not json", "not a run saved by insert_data --json"),
        ("[]", "not a run saved by insert_data --json"),
        ('{"run_id": "x"}', "not a run saved by insert_data --json (missing 'summary')"),
    ],
)
def test_a_bad_from_json_file_is_one_line_of_error(output_dir, no_simulation, content, problem):
    saved = output_dir / "run.json"
    if content is not None:
        saved.write_text(content, encoding="utf-8")
    pdf_path = output_dir / "report.pdf"
    message = one_line_error(from_json=str(saved), output=str(pdf_path))
    assert message.startswith(f"--from-json {saved}: ") and problem in message
    assert not pdf_path.exists()


def test_from_json_and_json_together_are_refused(output_dir, no_simulation):
    message = one_line_error(from_json="run.json", json=str(output_dir / "again.json"))
    assert re.match(r"--json and --from-json together", message)


@all_databases
def test_a_run_over_two_processes_has_its_processes_and_workers_in_the_pdf(output_dir):
    pdf_path, json_path = output_dir / "report.pdf", output_dir / "run.json"
    stdout = StringIO()
    call_command(
        "generate_pdf_report",
        processes=2,
        threads=2,
        records=200,
        seed=1,
        output=str(pdf_path),
        json=str(json_path),
        verbosity=0,
        stdout=stdout,
    )
    summary = RunSummary.from_dict(json.loads(json_path.read_text(encoding="utf-8")))
    assert summary.scale_out.transport == "processes" and summary.scale_out.slices == 2
    text = pdf_text(pdf_path.read_bytes())
    assert "Spread over 2 local processes, 2 slices, each slice with 2 threads per model" in text
    assert "Processes and workers" in text and "Threads by process or worker" in text
    for executor in summary.scale_out.executors:
        assert executor.executor in text
    assert "Spread over 2 processes in 2 slices:" in stdout.getvalue()
