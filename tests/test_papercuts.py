"""What a new user hit when trying the project, each shown fixed: run as a user runs it, in a
subprocess on a temporary data directory."""

import json
import subprocess
import sys

from tests.processes import PROJECT, environment, manage


def test_control_characters_in_names_are_shown_escaped_on_the_console(tmp_path):
    # Seed 5 generates names with NUL (users) and BEL (products) among its invalid records.
    result = manage(tmp_path, "insert_data", "--records", "300", "--seed", "5", "-v", "2")
    assert result.returncode == 0, result.stderr
    assert "\x00" not in result.stdout and "\x07" not in result.stdout
    assert "[U+0000]" in result.stdout
    assert "[U+0007]" in result.stdout


def test_json_dash_writes_the_summary_to_stdout_and_the_console_to_stderr(tmp_path):
    result = manage(tmp_path, "insert_data", "--json", "-")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["summary"]["user"]["inserted"] == 8
    assert "Inserted user: Alice" in result.stderr
    assert "Data insertion completed" in result.stderr
    assert not (tmp_path / "-").exists() and not (PROJECT / "-").exists()


def test_details_dash_streams_every_verdict_to_stdout(tmp_path):
    result = manage(tmp_path, "insert_data", "--details", "-", "-v", "0")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 30
    assert {line["model"] for line in lines} == {"user", "product", "order"}
    assert "rows reconcile" in result.stderr
    assert not (tmp_path / "-").exists() and not (PROJECT / "-").exists()


def test_json_and_details_cannot_both_take_stdout(tmp_path):
    result = manage(tmp_path, "insert_data", "--json", "-", "--details", "-")
    assert result.returncode == 1
    assert "cannot both take standard output" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_data_directory_whose_parent_is_missing_is_named_with_what_to_do(tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    result = manage(tmp_path, "insert_data", env={"DS_DATA_DIR": str(missing)})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"the directory {missing} does not exist" in lines[0]
    assert "DS_DATA_DIR" in lines[0] and "mkdir -p" in lines[0]
    assert "unable to open database file" not in result.stderr
    assert not (tmp_path / "no").exists()


def test_a_closed_pipe_exits_1_and_says_why_on_stderr(tmp_path):
    """`insert_data | head -3`: the reader leaves after three lines."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", "insert_data", "--records", "2000", "-v", "2"],
        cwd=PROJECT,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(3):
        process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 1
    assert "standard output was closed" in stderr
    assert "Traceback" not in stderr


def test_manage_py_without_django_says_to_set_up_or_activate_the_venv(tmp_path):
    """A bare `python manage.py ...` outside the venv: one line, not a ModuleNotFoundError."""
    result = subprocess.run(
        [sys.executable, "-S", "manage.py", "insert_data"],  # -S: no site-packages, no Django
        cwd=PROJECT,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "./setup.sh" in result.stderr and ".venv/bin/activate" in result.stderr
