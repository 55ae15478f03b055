"""Faults a real deployment meets, each run as a user would (manage.py in a subprocess, on a
temporary data directory): locks held by other processes, Ctrl-C, SIGKILL, missing, empty,
corrupt or read-only files, a full disk. Committed records survive; uncommitted ones leave no
trace; every problem is a clear line, never a traceback."""

import json
import os
import resource
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.processes import manage, start

TABLES = {
    "users.db": "data_insertion_user",
    "products.db": "data_insertion_product",
    "orders.db": "data_insertion_order",
}


def query(path: Path, sql: str, read_only: bool = False):
    # immutable: a read-only directory cannot hold the WAL index a normal reader creates
    uri = f"file:{path}?immutable=1" if read_only else f"file:{path}"
    with closing(sqlite3.connect(uri, uri=True)) as connection:
        return connection.execute(sql).fetchone()[0]


def rows(data_dir: Path, read_only: bool = False) -> dict[str, int]:
    return {
        name: query(data_dir / name, f'SELECT count(*) FROM "{table}"', read_only)
        for name, table in TABLES.items()
    }


def integrity(data_dir: Path) -> dict[str, str]:
    return {name: query(data_dir / name, "PRAGMA integrity_check") for name in TABLES}


def wait_for_rows(data_dir: Path, process: subprocess.Popen, least: int = 500) -> None:
    """Until the run has committed some users (so a signal lands mid-run)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if rows(data_dir)["users.db"] >= least:
                return
        except sqlite3.Error:
            pass  # not migrated yet
        time.sleep(0.1)
    pytest.fail("the run committed nothing within 60 s")


def test_a_lock_held_for_a_few_seconds_by_another_process_is_waited_for(tmp_path):
    assert manage(tmp_path, "insert_data", "-v", "0").returncode == 0
    holder = sqlite3.connect(tmp_path / "users.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    run = start(tmp_path, "insert_data", "--records", "300", "--json", str(tmp_path / "r.json"))
    time.sleep(3)
    holder.execute("ROLLBACK")
    holder.close()
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert all(model["failed"] == 0 for model in summary.values())
    assert "locked" not in out + err


def test_a_lock_held_past_the_timeout_fails_those_records_and_the_others_go_on(tmp_path):
    assert manage(tmp_path, "insert_data", "-v", "0").returncode == 0
    holder = sqlite3.connect(tmp_path / "users.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # held for the whole run
    try:
        result = manage(
            tmp_path,
            "insert_data",
            "--json",
            str(tmp_path / "r.json"),
            env={"DS_SQLITE_TIMEOUT": "0.1"},
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 1
    failed_users = [line for line in result.stdout.splitlines() if line.startswith("Failed user:")]
    assert len(failed_users) == 8
    # The first records fail after their retries; then users_db's breaker fails the rest fast.
    assert all("database: users_db: " in line for line in failed_users)
    assert all("database is locked" in line for line in failed_users)
    assert "user: 1 x database: users_db: database is locked" in result.stdout
    assert "user: 7 x database: users_db: failing fast, the circuit is open" in result.stdout
    assert "users_db: 1 retried, 7 failed fast (circuit open), 1 failed after waiting" in (
        result.stdout
    )
    assert "records failed to commit" in result.stderr
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert (summary["user"]["failed"], summary["user"]["inserted"]) == (8, 0)
    assert summary["product"]["inserted"] == 9  # the products database was free
    assert summary["order"]["failed"] == 0  # orders for users never committed are rejected
    assert rows(tmp_path) == {"users.db": 8, "products.db": 18, "orders.db": 8}


def test_a_bad_environment_variable_is_one_line(tmp_path):
    result = manage(tmp_path, "insert_data", env={"DS_SQLITE_TIMEOUT": "soon"})
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "Configuration error: DS_SQLITE_TIMEOUT='soon' is not a finite number"
    )


def test_ctrl_c_stops_cleanly_prints_the_summary_and_exits_130(tmp_path):
    saved = tmp_path / "r.json"
    run = start(tmp_path, "insert_data", "--records", "500000", "-v", "0", "--json", str(saved))
    wait_for_rows(tmp_path, run)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    assert "Interrupted" in out and "rows reconcile" in out
    assert "Traceback" not in err
    summary = json.loads(saved.read_text())
    assert summary["interrupted"] is True
    counted = rows(tmp_path)
    assert summary["summary"]["user"]["inserted"] == counted["users.db"] > 0
    assert summary["summary"]["user"]["attempted"] < 500_000


def test_sigkill_mid_run_leaves_consistent_databases_and_the_next_run_works(tmp_path):
    run = start(tmp_path, "insert_data", "--records", "500000", "--threads", "50", "-v", "0")
    wait_for_rows(tmp_path, run, least=2000)
    run.kill()
    run.wait(timeout=30)
    assert integrity(tmp_path) == {name: "ok" for name in TABLES}
    audit = manage(tmp_path, "verify_data")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    before = rows(tmp_path)
    again = manage(tmp_path, "insert_data", "-v", "0")
    assert again.returncode == 0, again.stderr
    after = rows(tmp_path)
    assert after["users.db"] == before["users.db"] + 8


@pytest.mark.parametrize("state", ["missing", "empty", "not migrated"])
def test_missing_empty_or_unmigrated_files_are_migrated_automatically(tmp_path, state):
    if state == "empty":
        (tmp_path / "users.db").write_bytes(b"")
    elif state == "not migrated":
        sqlite3.connect(tmp_path / "users.db").execute(
            "CREATE TABLE unrelated (x)"
        ).connection.close()
    result = manage(tmp_path, "insert_data", "-v", "0")
    assert result.returncode == 0, result.stderr
    assert rows(tmp_path) == {"users.db": 8, "products.db": 9, "orders.db": 8}


def test_a_corrupt_database_file_is_one_clear_error(tmp_path):
    (tmp_path / "users.db").write_bytes(os.urandom(8192))
    result = manage(tmp_path, "insert_data")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"CommandError: cannot use users_db ({tmp_path / 'users.db'}): file is not a database"
    ]
    assert "Traceback" not in result.stdout + result.stderr


def read_only_directory(tmp_path: Path) -> Path:
    """A data directory that cannot be written: chmod for users, a read-only mount for root."""
    directory = tmp_path / "read-only"
    directory.mkdir()
    assert manage(directory, "insert_data", "-v", "0").returncode == 0
    for name in TABLES:  # fold the WAL into the file: nothing may need writing afterwards
        query(directory / name, "PRAGMA wal_checkpoint(TRUNCATE)")
    if os.geteuid() != 0:
        for path in [*directory.iterdir(), directory]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        return directory
    copy = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(directory), str(directory)], capture_output=True
    )
    if copy.returncode:
        pytest.skip("root cannot be kept from writing here without a read-only mount")
    return directory


def test_a_read_only_data_directory_is_one_clear_error_and_nothing_changes(tmp_path):
    directory = read_only_directory(tmp_path)
    try:
        before = rows(directory, read_only=True)
        result = manage(directory, "insert_data")
        assert result.returncode == 1
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("CommandError: cannot use ")
        assert (
            rows(directory, read_only=True)
            == before
            == {
                "users.db": 8,
                "products.db": 9,
                "orders.db": 8,
            }
        )
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(directory)], check=False)
        else:
            for path in [directory, *directory.iterdir()]:
                path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_full_disk_fails_records_with_the_reason_and_corrupts_nothing(tmp_path):
    assert manage(tmp_path, "insert_data", "-v", "0").returncode == 0
    limit = 1_200 * 1024  # files may not grow past 1.2 MB: the disk "fills up" mid-run

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = manage(tmp_path, "insert_data", "--records", "20000", "-v", "0", preexec_fn=small_disk)
    assert result.returncode == 1
    assert "records failed to commit" in result.stderr
    assert "Failed to commit, by reason:" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert integrity(tmp_path) == {name: "ok" for name in TABLES}
    assert "rows reconcile" in result.stdout
