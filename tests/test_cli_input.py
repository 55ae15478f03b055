"""Bad command-line input: one clear line naming the option and its range, non-zero exit,
nothing created or written. Run as a user would, in a subprocess, on a temporary data dir."""

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import all_databases
from tests.processes import manage


@pytest.mark.parametrize(
    "args, option, allowed",
    [
        (["--threads", "0"], "--threads", "1..1,000"),
        (["--threads", "1001"], "--threads", "1..1,000"),
        (["--threads", "many"], "--threads", "not a whole number"),
        (["--records", "-1"], "--records", "0..10,000,000"),
        (["--records", "10000001"], "--records", "0..10,000,000"),
        (["--invalid-ratio", "1.5"], "--invalid-ratio", "0..1"),
        (["--invalid-ratio", "nan"], "--invalid-ratio", "0..1"),
        (["--batch-size", "0"], "--batch-size", "1..10,000"),
        (["--seed", "-3"], "--seed", "0.."),
    ],
)
def test_a_bad_option_is_one_line_and_changes_nothing(tmp_path, args, option, allowed):
    result = manage(tmp_path, "insert_data", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert option in lines[0] and allowed in lines[0]
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no database created


@pytest.mark.parametrize(
    "args",
    [
        ["--json", "/nonexistent-dir/run.json"],
        ["--details", "/nonexistent-dir/run.jsonl"],
        ["--json", "."],
    ],
)
def test_a_bad_output_path_is_refused_before_anything_runs(tmp_path, args):
    result = manage(tmp_path, "insert_data", *args)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and args[0] in result.stderr
    assert not any(p.suffix == ".db" and p.stat().st_size for p in tmp_path.iterdir())
    assert not Path("/nonexistent-dir").exists()


@all_databases
def test_details_stream_every_verdict_as_json_lines(output_dir):
    from django.core.management import call_command

    from data_insertion.models import User

    path = output_dir / "run.jsonl"
    call_command("insert_data", records=120, seed=4, details=str(path), verbosity=0, stdout=None)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 360
    inserted_users = [d for d in lines if d["model"] == "user" and d["status"] == "inserted"]
    assert len(inserted_users) == User.objects.count()
    assert {d["status"] for d in lines} <= {"inserted", "rejected", "failed"}
    assert all(d["errors"] for d in lines if d["status"] == "rejected")
    assert not [p for p in output_dir.iterdir() if p.name.startswith(".run.jsonl")]


@pytest.mark.parametrize(
    "args",
    [
        ["insert_data", "--threads", "0"],
        ["insert_data", "--records", "ten"],
        ["insert_data", "--invalid-ratio", "-0.1"],
        ["insert_data", "--batch-size", "0", "--fresh"],
        ["generate_pdf_report", "--threads", "5000", "--fresh"],
        ["generate_pdf_report", "--output", "/nonexistent-dir/report.pdf", "--fresh"],
        ["generate_pdf_report", "--from-json", "/nonexistent-dir/run.json"],
        ["verify_data", "--limit", "-1"],
        ["benchmark", "--records", "0"],
    ],
)
def test_bad_input_leaves_existing_databases_byte_for_byte_unchanged(tmp_path, args):
    assert manage(tmp_path, "insert_data", "-v", "0").returncode == 0
    before = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in tmp_path.iterdir()
    }
    result = manage(tmp_path, *args)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    after = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in tmp_path.iterdir()
    }
    assert after == before  # no file changed, none added (no PDF, no JSON)


def test_check_deploy_is_clean_with_the_production_variables(tmp_path):
    production = {
        "DJANGO_SECRET_KEY": "a-long-random-production-key-" + "x7Rq2" * 10,
        "DJANGO_ALLOWED_HOSTS": "admin.example.com",
        "DJANGO_HTTPS": "1",
    }
    result = manage(tmp_path, "check", "--deploy", env=production)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    development = manage(tmp_path, "check", "--deploy")
    assert "security.W009" in development.stderr  # the development key is flagged
