"""A run spread over local processes (--processes) and over Celery workers (--celery): the same
counts as one process, rows that reconcile, and nothing lost or doubled when an executor dies."""

import contextlib
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from data_insertion.engine import SimulationConfig, run_simulation
from data_insertion.engine import processes as local_processes
from data_insertion.engine.scaleout import run_spread_over
from data_insertion.identity import record_key
from data_insertion.models import Product, User
from data_insertion.results import MODELS
from data_insertion.services import commit_records, prepare_product, prepare_user
from tests.conftest import all_databases, redis_or_skip
from tests.processes import PROJECT, environment, manage, start

# The broker of the Celery tests: database 2 of the local Redis unless named; each test has a
# queue of its own, deleted afterwards.
REDIS_BROKER = os.environ.get("DS_TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/2")
FILES = {"user": "users.db", "product": "products.db", "order": "orders.db"}
TABLES = {
    "user": "data_insertion_user",
    "product": "data_insertion_product",
    "order": "data_insertion_order",
}


def rows_in_files(data_dir: Path) -> dict[str, int]:
    counts = {}
    for model, name in FILES.items():
        with sqlite3.connect(data_dir / name) as connection:
            counts[model] = connection.execute(f"SELECT count(*) FROM {TABLES[model]}").fetchone()[
                0
            ]
    return counts


def attempts(data_dir: Path, state: str) -> list[tuple[int, int, str]]:
    """(phase, slice, executor) of the attempts in `state`, from the default database (none
    before the run has made its tables)."""
    try:
        with sqlite3.connect(data_dir / "default.db") as connection:
            return connection.execute(
                "SELECT phase, slice_number, executor FROM runs_sliceattempt WHERE state = ?",
                [state],
            ).fetchall()
    except sqlite3.OperationalError:
        return []


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kill_mid_run(run: subprocess.Popen, data_dir: Path, kill) -> tuple[str, str]:
    """Once a slice runs and has committed some records, `kill` the pid running it; the run's
    output when it ends."""
    try:
        running = wait_for(lambda: attempts(data_dir, "running"), 90, "a running slice")
        time.sleep(0.5)  # some of its records committed
        kill(int(running[0][2].rpartition(":")[2]))
        return run.communicate(timeout=300)
    finally:
        run.kill()


def counts(summary) -> dict[str, tuple[int, int, int]]:
    return {m: (s.inserted, s.rejected, s.failed) for m, s in summary.models.items()}


@all_databases
def test_the_same_seed_gives_the_same_counts_whatever_the_number_of_processes():
    summaries = {
        processes: run_simulation(
            SimulationConfig(threads=2, records=600, seed=3, batch_size=50, processes=processes)
        )
        for processes in (1, 2, 4)
    }
    assert counts(summaries[2]) == counts(summaries[1]) == counts(summaries[4])
    for processes, summary in summaries.items():
        assert summary.ok and summary.reconciled, summary.verdict
        if processes > 1:
            scale_out = summary.scale_out
            assert (scale_out.transport, scale_out.slices) == ("processes", processes)
            assert len(scale_out.executors) == processes  # each process ran its own slice
            assert {a.state for a in scale_out.attempts} == {"finished"}
            assert len(scale_out.attempts) == 2 * processes  # a slice per process per phase
            # threads are named by slice, and the merged per-thread view holds them all
            threads = summary.models["user"].threads
            assert {t.thread[:3] for t in threads} == {f"s{n}-" for n in range(1, processes + 1)}
            assert sum(t.handled for t in threads) == 600


@all_databases
def test_slices_of_a_phase_are_released_together(monkeypatch):
    """One process starts its slice a second late; the barrier holds the other back."""
    real_execute = local_processes.execute_attempt

    def late_second_process(attempt_id, barrier=None):
        from data_insertion.runs.models import SliceAttempt

        if SliceAttempt.objects.get(pk=attempt_id).slice_number == 1:
            time.sleep(1.0)
        return real_execute(attempt_id, barrier)

    monkeypatch.setattr(local_processes, "execute_attempt", late_second_process)
    config = SimulationConfig(threads=2, records=300, seed=1, processes=2)
    summary = run_spread_over(local_processes.LocalProcesses(2, 2), 2, config)
    assert summary.ok, summary.verdict
    firsts = [a for a in summary.scale_out.attempts if a.phase == 1]
    assert len(firsts) == 2
    user_threads = summary.models["user"].threads
    assert {t.thread[:3] for t in user_threads} == {"s1-", "s2-"}
    # Both slices waited for the late one: the phase's records began after its second.
    assert summary.models["user"].wall_seconds < 1.0 < summary.duration_seconds


@all_databases
def test_a_redone_batch_counts_what_its_first_attempt_committed_once():
    def batch(run_number: int):
        records = [
            prepare_user(name="Ada", email=f"ada{n}+{run_number}@example.com") for n in range(3)
        ]
        for index, record in enumerate(records):
            record.instance.record_key = record_key(run_number, 0, index)
        return records

    first = commit_records(batch(7)[:2])  # the first attempt died after two records
    again = commit_records(batch(7))  # the redone slice sends all three
    assert [r.status for r in first + again] == ["inserted"] * 5
    assert [r.found_committed for r in again] == [True, True, False]
    assert [r.pk for r in again[:2]] == [r.pk for r in first]
    assert User.objects.filter(email__endswith="+7@example.com").count() == 3
    # A product's identity picks its logical shard, so a redo looks where the row went.
    product = prepare_product(name="Lamp", price="9.99")
    product.instance.record_key = record_key(7, 0, 0)
    assert commit_records([product])[0].status == "inserted"
    assert Product.objects.filter(record_key=record_key(7, 0, 0)).count() == 1


def test_insert_data_with_processes_reconciles_in_each_database(tmp_path):
    result = manage(
        tmp_path,
        "insert_data",
        "--processes", "2",
        "--threads", "3",
        "--records", "3000",
        "--batch-size", "100",
        "--seed", "5",
        "--json", "-",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    inserted = {model: summary["summary"][model]["inserted"] for model in MODELS}
    assert rows_in_files(tmp_path) == inserted
    assert len(summary["scale_out"]["executors"]) == 2
    assert "Spread over 2 processes" in result.stderr or summary["scale_out"]["slices"] == 2


def test_a_local_process_killed_mid_run_has_its_slice_redone(tmp_path):
    run = start(
        tmp_path,
        "insert_data",
        "--processes", "2",
        "--threads", "2",
        "--records", "30000",
        "--json", "-",
        env={"DS_SLICE_HEARTBEAT_TIMEOUT": "2"},
    )  # fmt: skip
    stdout, stderr = kill_mid_run(run, tmp_path, lambda pid: os.kill(pid, signal.SIGKILL))
    assert run.returncode == 0, stderr
    summary = json.loads(stdout)
    scale_out = summary["scale_out"]
    redone = [a for a in scale_out["attempts"] if a["attempt"] > 1]
    assert redone and all(a["state"] == "finished" for a in redone)
    assert any(a["found_committed"] for a in redone)
    inserted = {model: summary["summary"][model]["inserted"] for model in MODELS}
    assert rows_in_files(tmp_path) == inserted  # nothing doubled, nothing lost
    for model in MODELS:  # every record judged once
        assert summary["summary"][model]["attempted"] == 30000


def test_ctrl_c_stops_every_process_and_reports_what_was_committed(tmp_path):
    run = start(tmp_path, "insert_data", "--processes", "2", "--records", "200000", "--json", "-")
    try:
        wait_for(lambda: attempts(tmp_path, "running"), 60, "a running slice")
        time.sleep(0.5)
        run.send_signal(signal.SIGINT)
        stdout, stderr = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 130, stderr
    summary = json.loads(stdout)
    assert summary["interrupted"]
    inserted = {model: summary["summary"][model]["inserted"] for model in MODELS}
    assert 0 < inserted["user"] < 200000
    assert inserted["order"] == 0  # stopped in phase 1: no phase starts after the stop
    assert rows_in_files(tmp_path) == inserted


@pytest.mark.parametrize(
    "options, message",
    [
        (["--celery", "--processes", "2"], "--celery and --processes cannot be combined"),
        (["--slices", "4"], "--slices needs --processes N (N > 1) or --celery"),
        (["--processes", "2", "--details", "-"], "--details streams every verdict"),
        (["--processes", "65"], "65 is outside 1..64"),
        (["--celery"], "--celery needs a broker: set DS_CELERY_BROKER_URL"),
    ],
)
def test_scale_out_options_are_checked_in_one_line(tmp_path, options, message):
    result = manage(tmp_path, "insert_data", *options, env={"DS_CELERY_BROKER_URL": ""})
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


class CeleryWorker:
    """A real `celery -A distributed_system worker` in its own process group."""

    def __init__(self, data_dir: Path, queue: str, name: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "distributed_system", "worker",
                "--concurrency", "1", "--hostname", f"{name}@%h", "--loglevel", "WARNING",
                "--without-gossip", "--without-mingle",
            ],
            cwd=PROJECT,
            env=environment(
                data_dir, DS_CELERY_BROKER_URL=REDIS_BROKER, DS_CELERY_QUEUE=queue
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip

    def pids(self) -> set[int]:
        """The worker's process and its pool's."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        found = {self.process.pid}
        if children.exists():
            found |= {int(pid) for pid in children.read_text().split()}
        return found

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def consumers_of(queue: str) -> int:
    """How many workers online consume `queue`. Asked from another process: kombu left in
    this one would hang every later fork (its after-fork hook reads from the broker)."""
    ask = (
        "import sys; from celery import Celery\n"
        "with Celery(broker=sys.argv[1]) as app:\n"
        "    online = app.control.inspect(timeout=0.5).active_queues() or {}\n"
        "print(sum(any(q['name'] == sys.argv[2] for q in qs) for qs in online.values()))"
    )
    answer = subprocess.run(
        [sys.executable, "-c", ask, REDIS_BROKER, queue], capture_output=True, text=True
    )
    return int(answer.stdout or 0)


@pytest.fixture
def celery_workers(tmp_path):
    """Two real workers on a queue of the test's own, against the local Redis."""
    broker = redis_or_skip(REDIS_BROKER, "DS_TEST_CELERY_BROKER_URL")
    manage(tmp_path, "migrate")  # the workers' default database exists before they start
    queue = f"test-{uuid.uuid4().hex[:8]}"
    workers = [CeleryWorker(tmp_path, queue, f"w{n}") for n in (1, 2)]
    yield queue, workers
    for worker in workers:
        worker.kill()
    leftovers = list(broker.scan_iter(match=f"*{queue}*"))
    if leftovers:
        broker.delete(*leftovers)


def test_celery_workers_run_the_slices_and_the_rows_reconcile(tmp_path, celery_workers):
    queue, workers = celery_workers
    result = manage(
        tmp_path,
        "insert_data", "--celery", "--slices", "4", "--threads", "2", "--records", "2000",
        "--json", "-",
        env={"DS_CELERY_BROKER_URL": REDIS_BROKER, "DS_CELERY_QUEUE": queue},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["scale_out"]["transport"] == "Celery workers"
    executors = {e["executor"].rpartition(":")[2] for e in summary["scale_out"]["executors"]}
    worker_pids = set().union(*(w.pids() for w in workers))
    assert executors <= {str(pid) for pid in worker_pids}
    inserted = {model: summary["summary"][model]["inserted"] for model in MODELS}
    assert rows_in_files(tmp_path) == inserted


def test_a_celery_worker_killed_mid_run_loses_and_doubles_nothing(tmp_path, celery_workers):
    queue, workers = celery_workers
    run = start(
        tmp_path,
        "insert_data", "--celery", "--slices", "4", "--threads", "2", "--records", "12000",
        "--json", "-",
        env={
            "DS_CELERY_BROKER_URL": REDIS_BROKER,
            "DS_CELERY_QUEUE": queue,
            "DS_SLICE_HEARTBEAT_TIMEOUT": "3",
        },
    )  # fmt: skip
    killed = []

    def kill_its_worker(pid: int) -> None:
        killed.append(pid)
        next(w for w in workers if pid in w.pids()).kill()  # SIGKILL, the worker and its pool

    stdout, stderr = kill_mid_run(run, tmp_path, kill_its_worker)
    assert run.returncode == 0, stderr
    pid = killed[0]
    summary = json.loads(stdout)
    scale_out = summary["scale_out"]
    abandoned = [a for a in scale_out["attempts"] if a["state"] == "abandoned"]
    assert abandoned and abandoned[0]["executor"].endswith(f":{pid}")
    redone = [a for a in scale_out["attempts"] if a["attempt"] > 1]
    assert redone and all(a["state"] == "finished" for a in redone)
    inserted = {model: summary["summary"][model]["inserted"] for model in MODELS}
    assert rows_in_files(tmp_path) == inserted  # nothing doubled, nothing lost
    for model in MODELS:
        assert summary["summary"][model]["attempted"] == 12000  # every record counted once


@all_databases
def test_faults_act_on_every_process_of_a_spread_run():
    from data_insertion.engine.faults import parse_fault

    summary = run_simulation(
        SimulationConfig(
            threads=2,
            records=4000,
            seed=2,
            batch_size=50,
            processes=2,
            faults=(parse_fault("products_db:down:500ms@0s"), parse_fault("users_db:latency:2ms")),
        )
    )
    down, slow = summary.faults
    # Each process shut products_db's door itself; the summary knows when it held.
    assert down.applied_at and down.removed_at and not down.error
    assert summary.models["product"].failed > 0
    assert {
        r.message.split(":")[0] for r in summary.models["product"].reasons if r.status == "failed"
    } == {"products_db"}
    assert slow.applied_at and summary.models["user"].latency_ms.p50 >= 2.0
    assert summary.reconciled  # failed records are not rows; every committed one is counted


def test_a_sharded_run_over_processes_reconciles_and_audits_clean(tmp_path):
    shards = {"DS_SHARDS": "2"}
    run = manage(
        tmp_path,
        "insert_data", "--processes", "2", "--threads", "2", "--records", "2000",
        "--batch-size", "100", "--json", "-",
        env=shards,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert all(len(model["database_rows"]) == 2 for model in summary["summary"].values())
    audit = manage(tmp_path, "verify_data", env=shards)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_the_benchmark_measures_whole_processes_beside_the_raw_loop(tmp_path):
    result = manage(
        tmp_path, "benchmark", "--processes", "1,2", "--threads", "2", "--records", "300",
        env={"DS_CELERY_BROKER_URL": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for run in (
        "raw sqlite3, one transaction per record",
        "1 process, one transaction per record",
        "2 processes, group commit (batch 500)",
    ):
        assert run in out and "900" in out.split(run)[1].splitlines()[0]  # every row committed
    assert "2 processes, group commit (batch 500): " in out and "x 1 process" in out
    # rows, seconds, rows/s, then the cores the whole processes kept busy
    cores = float(out.split("2 processes, group commit (batch 500)")[1].split()[3])
    assert 0 < cores <= os.cpu_count() + 0.5
    assert "cores: CPU time over wall time" in out
    assert "no Celery line: DS_CELERY_BROKER_URL is not set" in out
    # the runs went to temporary directories: no model database in the data directory
    assert not {"users.db", "products.db", "orders.db"} & {p.name for p in tmp_path.glob("*.db")}


def test_slices_waiting_for_a_busy_process_are_not_given_up(tmp_path):
    """More slices than processes: the last ones wait longer than the queue timeout while the
    processes are busy with the first ones, which is no reason to give them up."""
    result = manage(
        tmp_path,
        "insert_data", "--processes", "2", "--slices", "4", "--threads", "2",
        "--records", "20000", "-v", "0",
        env={"DS_SLICE_QUEUE_TIMEOUT": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_a_process_killed_while_waiting_for_work_holds_up_nothing(tmp_path):
    """One slice for two processes: the idle one is killed while it waits for work. The other
    still takes the orders phase (a queue's lock held by the dead process once kept it from
    ever taking another slice), and the run ends well inside the queue timeout."""
    run = start(
        tmp_path,
        "insert_data", "--processes", "2", "--slices", "1", "--threads", "2",
        "--records", "20000", "--json", "-",
        env={"DS_SLICE_QUEUE_TIMEOUT": "30"},
    )  # fmt: skip
    try:
        running = wait_for(lambda: attempts(tmp_path, "running"), 90, "a running slice")
        busy = int(running[0][2].rpartition(":")[2])
        children = Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split()
        idle = next(int(pid) for pid in children if int(pid) != busy)
        os.kill(idle, signal.SIGKILL)
        started = time.monotonic()
        stdout, stderr = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode == 0, stderr
    assert time.monotonic() - started < 30
    summary = json.loads(stdout)
    inserted = {model: summary["summary"][model]["inserted"] for model in MODELS}
    assert inserted["order"] > 0
    assert rows_in_files(tmp_path) == inserted


def test_celery_slices_default_to_two_per_worker_process_on_the_run_queue(tmp_path, celery_workers):
    queue, _ = celery_workers
    env = {"DS_CELERY_BROKER_URL": REDIS_BROKER, "DS_CELERY_QUEUE": queue}
    wait_for(lambda: consumers_of(queue) == 2, 60, "both workers on the queue")
    result = manage(
        tmp_path, "insert_data", "--celery", "--threads", "2", "--records", "400", "--json", "-",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["scale_out"]["slices"] == 4  # 2 workers x 1 process x 2
    # Workers online, but none on this queue: said at once, not after the queue timeout.
    elsewhere = {**env, "DS_CELERY_QUEUE": f"{queue}-nobody"}
    started = time.monotonic()
    result = manage(tmp_path, "insert_data", "--celery", "--records", "10", env=elsewhere)
    assert result.returncode != 0
    assert f"no Celery worker consumes the queue {queue}-nobody" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 30


def test_a_process_killed_at_the_barrier_holds_the_others_no_longer_than_its_timeout(tmp_path):
    """multiprocessing's barrier left the others blocked for good when a waiter was killed."""
    barrier = local_processes.PhaseBarrier(str(tmp_path), parties=3)
    context = multiprocessing.get_context("fork")
    waiters = [context.Process(target=barrier.wait, args=(1, 3.0)) for _ in range(2)]
    for waiter in waiters:
        waiter.start()
    arrivals = tmp_path / "phase-1"
    wait_for(lambda: arrivals.exists() and arrivals.stat().st_size == 2, 10, "both waiting")
    os.kill(waiters[0].pid, signal.SIGKILL)
    waiters[1].join(10)
    assert waiters[1].exitcode == 0  # released by its timeout
    started = time.monotonic()
    barrier.wait(1, 3.0)  # the last party: the others are gone, it goes at once
    assert time.monotonic() - started < 1.0
    barrier.wait(2, 0.2)  # a phase of its own
    assert (tmp_path / "phase-2").stat().st_size == 1
