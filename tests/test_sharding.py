"""Sharding as a user sees it: rows per database file, verify_data's verdict, rebalancing while
a run inserts, and a rebalance killed and run again. Commands run in subprocesses (settings, so
DATABASES, are read when a process starts), every file in a temporary directory."""

import json
import signal
import sqlite3
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_insertion.topology.shards import (
    DIGITS,
    LOGICAL_SHARDS,
    MAX_DATABASES,
    SEQUENCE_LIMIT,
    even_assignment,
    id_ranges,
    logical_shard_of_id,
    make_id,
    rebalanced_assignment,
    sequence_of_id,
)
from tests.processes import manage, start

TABLES = {"users": "data_insertion_user", "products": "data_insertion_product"}
TABLES["orders"] = "data_insertion_order"


def rows(data_dir, name: str, index: int) -> list[tuple]:
    table = TABLES[name]
    with sqlite3.connect(data_dir / f"{name}_{index}.db") as connection:
        return connection.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


def inserted(stdout: str) -> dict[str, int]:
    summary = json.loads(stdout)["summary"]
    return {model: summary[model]["inserted"] for model in summary}


@given(st.integers(0, LOGICAL_SHARDS - 1), st.integers(1, SEQUENCE_LIMIT - 1))
def test_an_id_carries_its_logical_shard_and_fits_64_bits(shard, sequence):
    row_id = make_id(shard, sequence)
    assert 0 < row_id < 2**63
    assert (logical_shard_of_id(row_id), sequence_of_id(row_id)) == (shard, sequence)


@given(st.integers(1, MAX_DATABASES), st.integers(1, MAX_DATABASES))
def test_rebalancing_gives_equal_shares_and_moves_only_what_it_must(before, after):
    current = even_assignment(before)
    target = rebalanced_assignment(current, after)
    shares = [target.count(digit) for digit in set(target)]
    assert len(shares) == after and max(shares) - min(shares) <= 1
    moved = sum(old != new for old, new in zip(current, target, strict=True))

    # A database keeps its shards up to its new share: only the excess moves.
    def share(index: int) -> int:
        if index >= after:
            return 0
        return LOGICAL_SHARDS // after + (index < LOGICAL_SHARDS % after)

    digits = sorted(set(current), key=DIGITS.index)
    assert moved == sum(max(0, current.count(d) - share(DIGITS.index(d))) for d in digits)


def test_consecutive_logical_shards_are_one_id_range():
    assert len(id_ranges(range(100, 300))) == 1
    assert len(id_ranges([1, 2, 5])) == 2


@pytest.mark.parametrize("value", ["0", "65", "four", "-1"])
def test_a_bad_shard_count_is_one_line_and_creates_nothing(tmp_path, value):
    result = manage(tmp_path, "insert_data", env={"DS_SHARDS": value})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Configuration error: DS_SHARDS={value!r} is not a whole number of databases from 1 to 64"
    ]
    assert not list(tmp_path.iterdir())


def test_four_shards_hold_even_shares_with_orders_beside_their_users(tmp_path):
    shards = {"DS_SHARDS": "4"}
    run = manage(
        tmp_path, "insert_data", "--threads", "50", "--records", "4000", "--json", "-", env=shards
    )
    assert run.returncode == 0, run.stderr
    counts = inserted(run.stdout)
    for name, model in (("users", "user"), ("products", "product"), ("orders", "order")):
        per_database = [len(rows(tmp_path, name, index)) for index in range(4)]
        assert sum(per_database) == counts[model]
        mean = sum(per_database) / 4
        assert all(abs(n - mean) <= 0.15 * mean for n in per_database), per_database
    # Every order's user is in the users database of the same number (same logical shards).
    for index in range(4):
        users = {row[0] for row in rows(tmp_path, "users", index)}
        assert {row[1] for row in rows(tmp_path, "orders", index)} <= users
    assert not (tmp_path / "users.db").exists()
    audit = manage(tmp_path, "verify_data", env=shards)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_verify_data_finds_each_kind_of_misplaced_row(tmp_path):
    shards = {"DS_SHARDS": "2"}
    run = manage(tmp_path, "insert_data", "--records", "200", env=shards)
    assert run.returncode == 0, run.stderr
    user = rows(tmp_path, "users", 0)[0]
    with sqlite3.connect(tmp_path / "users_1.db") as connection:  # a copy where it does not map
        connection.execute(
            f"INSERT INTO data_insertion_user VALUES ({', '.join('?' * len(user))})", user
        )
    other_user = rows(tmp_path, "users", 1)[-1][0]  # not the copy planted above
    with sqlite3.connect(tmp_path / "orders_0.db") as connection:  # an order away from its user
        connection.execute(
            "UPDATE data_insertion_order SET user_id = ? WHERE id = (SELECT MIN(id) FROM "
            "data_insertion_order)",
            [other_user],
        )
    audit = manage(tmp_path, "verify_data", env=shards)
    assert audit.returncode == 1
    assert f"user {user[0]}: stored in users_db_1, but its logical shard" in audit.stdout
    assert "orders not in their user's logical shard                   1" in audit.stdout
    assert "rows stored where their logical shard does not map         1" in audit.stdout


def all_ids(data_dir, name: str, databases: int) -> list[int]:
    return [row[0] for index in range(databases) for row in rows(data_dir, name, index)]


@pytest.mark.parametrize("kill", [False, True], ids=["whole", "killed-then-rerun"])
def test_rebalance_from_2_to_4_while_a_run_inserts_loses_and_repeats_nothing(tmp_path, kill):
    shards = {"DS_SHARDS": "2"}
    first = manage(tmp_path, "insert_data", "--records", "2000", "--json", "-", env=shards)
    assert first.returncode == 0, first.stderr
    run = start(
        tmp_path, "insert_data", "--threads", "20", "--records", "6000", "--json", "-", env=shards
    )
    if kill:
        rebalance = start(tmp_path, "rebalance", "--shards", "4", env=shards)
        # Killed once it has moved a chunk of logical shards (its progress is on stderr).
        line = rebalance.stderr.readline()
        assert "chunk" in line, line + rebalance.stderr.read()
        rebalance.send_signal(signal.SIGKILL)
        rebalance.wait()
    else:
        time.sleep(0.5)  # not a timing assertion: only lets the run start writing first
    finished = manage(tmp_path, "rebalance", "--shards", "4", env=shards)
    assert finished.returncode == 0, finished.stderr
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    expected = {m: inserted(first.stdout)[m] + inserted(stdout)[m] for m in ("user", "product")}
    expected["order"] = inserted(first.stdout)["order"] + inserted(stdout)["order"]
    for name, model in (("users", "user"), ("products", "product"), ("orders", "order")):
        ids = all_ids(tmp_path, name, 4)
        assert len(ids) == len(set(ids)) == expected[model]
        assert all(len(rows(tmp_path, name, index)) for index in range(4))
    audit = manage(tmp_path, "verify_data", env=shards)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "No problems found in users_db_0, users_db_1, users_db_2, users_db_3" in audit.stdout


def test_same_email_from_64_threads_commits_once_across_shards(tmp_path):
    code = (
        "import json, threading\n"
        "from django.db import connections\n"
        "from data_insertion.housekeeping import migrate_databases\n"
        "from data_insertion.services import insert_user\n"
        "migrate_databases()\n"
        "barrier = threading.Barrier(64)\n"
        "results = []\n"
        "def racer(n):\n"
        "    email = ''.join(c.upper() if n >> i & 1 else c for i, c in enumerate('race@x.org'))\n"
        "    barrier.wait()\n"
        "    try:\n"
        "        results.append(insert_user(name=f'r{n}', email=email).status)\n"
        "    finally:\n"
        "        connections.close_all()\n"
        "threads = [threading.Thread(target=racer, args=(n,)) for n in range(64)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(json.dumps(sorted(results)))\n"
    )
    result = manage(tmp_path, "shell", "--command", code, env={"DS_SHARDS": "4"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]).count("inserted") == 1
    assert sum(len(rows(tmp_path, "users", index)) for index in range(4)) == 1


def test_the_benchmark_measures_each_shard_count_on_temporary_files(tmp_path):
    result = manage(
        tmp_path, "benchmark", "--shards", "1,2,4", "--records", "300", "--threads", "4"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for shards in (1, 2, 4):
        for mode in ("one transaction per record", "group commit"):
            [line] = [line for line in lines if f"{shards} per model, {mode}" in line]
            assert line.split()[-5] == "900"  # every row of 300 per model committed
    assert "a/c = " not in result.stdout  # the shard axis alone
    assert list(tmp_path.iterdir()) == []  # nothing left in the data directory


def test_the_benchmark_refuses_a_shard_count_out_of_range(tmp_path):
    result = manage(tmp_path, "benchmark", "--shards", "1,65")
    assert result.returncode == 2
    assert "--shards" in result.stderr


def test_a_fault_names_one_shard_of_a_sharded_model(tmp_path):
    shards = {"DS_SHARDS": "2"}
    run = manage(
        tmp_path, "insert_data", "--records", "200", "--fault", "users_db_1:latency:1ms",
        "--json", "-", env=shards,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "users_db_1 latency +1 ms per write transaction" in run.stderr + run.stdout
    refused = manage(tmp_path, "insert_data", "--fault", "users_db:lock:1s", env=shards)
    assert refused.returncode != 0
    assert "no database 'users_db' (one of users_db_0, users_db_1," in refused.stderr
