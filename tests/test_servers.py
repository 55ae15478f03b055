"""The project on real PostgreSQL and MariaDB servers: the same guarantees as on SQLite.

Needs DS_TEST_POSTGRES_URL and DS_TEST_MARIADB_URL (see tests/servers.py; .ci/run sets both);
each test is skipped, with the reason, when its server's variable is unset. Every test makes
its own databases and drops them; the project runs in subprocesses.
"""

import json
import sqlite3
import time

import pytest
from pypdf import PdfReader

from tests.servers import TABLES, Deployment

MODELS = {"users_db": "user", "products_db": "product", "orders_db": "order"}


def place_all(deployment: Deployment, on) -> None:
    for alias in TABLES:
        deployment.place(alias, on)


def succeeded(finished) -> str:
    assert finished.returncode == 0, (
        f"exit {finished.returncode}\n{finished.stdout}\n{finished.stderr}"
    )
    return finished.stdout


@pytest.mark.parametrize("batch_size", [None, 500], ids=["per-record", "group-commit"])
def test_each_database_holds_only_its_model_and_every_row_is_counted(
    any_server, deployment, tmp_path, batch_size
):
    place_all(deployment, any_server)
    run_json = tmp_path / "run.json"
    arguments = ["--threads", "60", "--records", "600", "--json", str(run_json), "-v", "0"]
    if batch_size:
        arguments += ["--batch-size", str(batch_size)]
    out = succeeded(deployment.manage("insert_data", *arguments))
    assert "rows reconcile" in out
    summary = json.loads(run_json.read_text())
    for alias, table in TABLES.items():
        on, name = deployment.databases[alias]
        assert on.tables(name) == {table, "django_migrations"}
        model = summary["summary"][MODELS[alias]]
        assert model["database"] == alias
        assert model["failed"] == 0
        assert model["inserted"] > 0
        assert deployment.rows(alias) == model["rows_after"] == model["inserted"]


RACE_ON_ONE_EMAIL = """
import json, threading
from django.db import connections
from data_insertion.models import User
from data_insertion.services import insert_user

COUNT = 64
barrier = threading.Barrier(COUNT)
statuses = [None] * COUNT

def race(number):
    # 64 spellings of one address that differ only in letter case.
    email = "".join(c.upper() if number >> i & 1 else c for i, c in enumerate("racers@example.com"))
    try:
        barrier.wait()
        statuses[number] = insert_user(name=f"Racer {number}", email=email).status
    finally:
        connections.close_all()

threads = [threading.Thread(target=race, args=(n,)) for n in range(COUNT)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
rows = User.objects.filter(email_normalized="racers@example.com").count()
print(json.dumps({"statuses": statuses, "rows": rows}))
"""


def test_same_email_from_64_threads_commits_once(any_server, deployment):
    deployment.place("users_db", any_server)
    succeeded(deployment.manage("migrate", "--database", "users_db", "-v", "0"))
    outcome = deployment.python(RACE_ON_ONE_EMAIL)
    statuses = outcome["statuses"]
    assert (statuses.count("inserted"), statuses.count("rejected"), outcome["rows"]) == (1, 63, 1)
    assert deployment.rows("users_db") == 1


RACE_OF_BATCHES = """
import json, random, threading
from django.db import connections
from data_insertion.models import User
from data_insertion.services import commit_records, prepare_user

EMAILS = [f"batch{i}@example.com" for i in range(200)]
COUNT = 4
barrier = threading.Barrier(COUNT)
results = [None] * COUNT

def commit_batch(number):
    # Every batch holds all 200 addresses, in its own order and letter case.
    emails = [e.upper() if number % 2 else e for e in EMAILS]
    random.Random(number).shuffle(emails)
    records = [prepare_user(name=f"Batch {number}", email=e) for e in emails]
    try:
        barrier.wait()
        results[number] = [r.status for r in commit_records(records)]
    finally:
        connections.close_all()

threads = [threading.Thread(target=commit_batch, args=(n,)) for n in range(COUNT)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
statuses = [status for batch in results for status in batch]
keys = list(User.objects.values_list("email_normalized", flat=True))
print(json.dumps({"statuses": statuses, "rows": len(keys), "distinct": len(set(keys))}))
"""


def test_racing_batches_of_the_same_emails_commit_each_email_once(any_server, deployment):
    deployment.place("users_db", any_server)
    succeeded(deployment.manage("migrate", "--database", "users_db", "-v", "0"))
    outcome = deployment.python(RACE_OF_BATCHES)
    statuses = outcome["statuses"]
    assert (statuses.count("inserted"), statuses.count("rejected")) == (200, 600)
    assert outcome["rows"] == outcome["distinct"] == 200


def test_connections_to_each_database_stay_within_the_cap(any_server, deployment):
    place_all(deployment, any_server)
    deployment.extra_environment["DS_MAX_CONNECTIONS_PER_DATABASE"] = "4"
    names = [name for _, name in deployment.databases.values()]
    process = deployment.start("insert_data", "--threads", "100", "--records", "1500", "-v", "0")
    peak = dict.fromkeys(names, 0)
    while process.poll() is None:
        for name, count in any_server.connections_per_database().items():
            if name in peak:
                peak[name] = max(peak[name], count)
        time.sleep(0.02)  # sampling the server, not waiting for threads
    out, err = process.communicate()
    assert process.returncode == 0, out + err
    assert "rows reconcile" in out
    assert all(count <= 4 for count in peak.values()), peak
    assert max(peak.values()) >= 2, peak  # the threads did share the databases


def test_users_on_postgresql_products_on_mariadb_orders_on_sqlite(
    postgres, mariadb, deployment, tmp_path
):
    deployment.place("users_db", postgres)
    deployment.place("products_db", mariadb)
    out = succeeded(deployment.manage("insert_data"))
    assert "Inserted user: Alice" in out and "Inserted product: Laptop" in out
    assert "rows reconcile" in out
    assert out.rstrip().endswith("Data insertion completed")

    run_json = tmp_path / "run.json"
    succeeded(
        deployment.manage(
            "insert_data", "--threads", "300", "--records", "1500", "-v", "0", "--json", run_json
        )
    )
    summary = json.loads(run_json.read_text())
    assert summary["databases"]["users_db"]["engine"] == "postgresql"
    assert summary["databases"]["products_db"]["engine"] == "mysql"
    assert summary["databases"]["orders_db"]["engine"] == "sqlite"
    assert all(model["failed"] == 0 for model in summary["summary"].values())
    with sqlite3.connect(deployment.data_dir / "orders.db") as orders:
        (order_rows,) = orders.execute("SELECT COUNT(*) FROM data_insertion_order").fetchone()
    assert order_rows == summary["summary"]["order"]["rows_after"]
    assert deployment.rows("users_db") == summary["summary"]["user"]["rows_after"]
    assert deployment.rows("products_db") == summary["summary"]["product"]["rows_after"]


AN_ORDER_FROM_A_THREAD = """
import threading
from django.core.management import call_command
from django.db import connections
from data_insertion import services
for alias in ("default", "users_db", "products_db", "orders_db"):
    call_command("migrate", database=alias, verbosity=0)
user = services.insert_user(name="A", email="a@example.com")
product = services.insert_product(name="P", price="1")
seen = {}
def order():
    result = services.insert_order(user_id=user.pk, product_id=product.pk, quantity=1)
    seen["status"] = result.status
    seen["holds users_db"] = connections["users_db"].connection is not None
    connections.close_all()
thread = threading.Thread(target=order)
thread.start()
thread.join()
print(seen["status"], seen["holds users_db"])
"""


def test_an_orders_check_on_a_server_gives_its_connection_back(postgres, deployment):
    """Orders on SQLite, users on PostgreSQL: the check's read counts against the users
    database's connection cap and hands the connection back when the order commits, or workers
    waiting for their turn keep connections that other threads then wait for."""
    deployment.place("users_db", postgres)
    out = succeeded(
        deployment.manage("shell", "--no-imports", "-v", "0", "-c", AN_ORDER_FROM_A_THREAD)
    )
    assert out.split() == ["inserted", "False"]


def test_outputs_show_engine_host_and_database_but_never_the_password(
    postgres, deployment, tmp_path
):
    place_all(deployment, postgres)
    password = "Sesame-7a1f-not-for-print"  # trust authentication ignores it
    for alias, (on, name) in deployment.databases.items():
        url = on.database_url(name).replace("://postgres@", f"://postgres:{password}@")
        deployment.extra_environment[f"{alias.removesuffix('_db').upper()}_DATABASE_URL"] = url
    run_json, report = tmp_path / "run.json", tmp_path / "report.pdf"
    finished = deployment.manage(
        "generate_pdf_report", "--output", report, "--json", run_json, "-v", "2"
    )
    succeeded(finished)
    summary = json.loads(run_json.read_text())
    pdf_text = "".join(page.extract_text() for page in PdfReader(report).pages)
    _, users = deployment.databases["users_db"]
    assert summary["databases"]["users_db"] == {
        "engine": "postgresql",
        "location": f"127.0.0.1:5432/{users}",
    }
    assert users in pdf_text.replace("\n", "")
    for text in (finished.stdout, finished.stderr, run_json.read_text(), pdf_text):
        assert password not in text


TRANSIENT_ERRORS = """
import json, threading
from django.db import OperationalError, connections, transaction
from data_insertion.services import insert_user

ALIAS = "users_db"
first = insert_user(name="First", email="first@example.com").pk
second = insert_user(name="Second", email="second@example.com").pk
UPDATE = "UPDATE data_insertion_user SET name = %s WHERE id = %s"
vendor = connections[ALIAS].vendor


def describe(error):
    # PostgreSQL's errors carry an SQLSTATE; MariaDB's an error number, first of their args.
    cause = error.__cause__
    code = cause.args[0] if vendor == "mysql" else cause.sqlstate
    return {"operational": isinstance(error, OperationalError), "code": code}


def in_threads(*bodies):
    errors = []

    def run(body):
        try:
            body()
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [describe(error) for error in errors]


barrier = threading.Barrier(2)


def crosswise(one, other):
    def body():
        with transaction.atomic(using=ALIAS), connections[ALIAS].cursor() as cursor:
            cursor.execute(UPDATE, ["a", one])
            barrier.wait()
            cursor.execute(UPDATE, ["b", other])

    return body


found = {"deadlock": in_threads(crosswise(first, second), crosswise(second, first))}
holding, released = threading.Event(), threading.Event()


def hold_row():
    with transaction.atomic(using=ALIAS), connections[ALIAS].cursor() as cursor:
        cursor.execute(UPDATE, ["held", first])
        holding.set()
        released.wait()


if vendor == "postgresql":
    read = threading.Event()

    def read_then_write():
        with transaction.atomic(using=ALIAS), connections[ALIAS].cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute("SELECT name FROM data_insertion_user WHERE id = %s", [first])
            read.set()
            released.wait()
            cursor.execute(UPDATE, ["late", first])

    def write_between():
        read.wait()
        with connections[ALIAS].cursor() as cursor:
            cursor.execute(UPDATE, ["between", first])
        released.set()

    found["serialization"] = in_threads(read_then_write, write_between)
else:

    def wait_for_row():
        holding.wait()
        try:
            with connections[ALIAS].cursor() as cursor:
                cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
                with transaction.atomic(using=ALIAS):
                    cursor.execute(UPDATE, ["waited", first])
        finally:
            released.set()

    found["lock_wait_timeout"] = in_threads(hold_row, wait_for_row)
print(json.dumps(found))
"""


def test_deadlocks_and_serialization_failures_surface_as_operational_error(any_server, deployment):
    """What services.commit_records retries: 40P01/40001 on PostgreSQL, 1213/1205 on MariaDB."""
    deployment.place("users_db", any_server)
    succeeded(deployment.manage("migrate", "--database", "users_db", "-v", "0"))
    found = deployment.python(TRANSIENT_ERRORS)
    if any_server.vendor == "postgresql":
        expected = {
            "deadlock": [{"operational": True, "code": "40P01"}],
            "serialization": [{"operational": True, "code": "40001"}],
        }
    else:
        expected = {
            "deadlock": [{"operational": True, "code": 1213}],
            "lock_wait_timeout": [{"operational": True, "code": 1205}],
        }
    assert found == expected


def test_benchmark_measures_engine_and_raw_psycopg_on_temporary_databases(postgres, deployment):
    place_all(deployment, postgres)
    out = succeeded(
        deployment.manage(
            "benchmark",
            "--threads", "4",
            "--records", "150",
            "--batch-size", "50",
            "--scaling-threads", "2",
            "--scaling-records", "60",
        )
    )  # fmt: skip
    assert "on postgresql" in out
    for mode in (
        "engine, one transaction per record",
        "engine, group commit (batch 50)",
        "raw psycopg, one transaction per record",
        "raw psycopg COPY, one transaction",
    ):
        line = next(line for line in out.splitlines() if mode in line)
        assert line.split()[-5] == "450"  # rows: 150 users, 150 products, 150 orders
    assert "2 threads x 60 records" in out and "a/c = " in out
    leftovers = postgres.execute("SELECT datname FROM pg_database WHERE datname LIKE 'ds_bench_%'")
    assert leftovers == []
    for on, name in deployment.databases.values():  # the configured ones were left alone
        assert on.tables(name) == set()


def test_benchmark_refuses_databases_on_different_engines(postgres, deployment):
    deployment.place("users_db", postgres)
    finished = deployment.manage("benchmark", "--records", "10")
    assert finished.returncode == 1
    assert "all on SQLite or all on PostgreSQL" in finished.stderr


def test_a_database_that_does_not_exist_is_reported_at_once_with_the_reason(any_server, deployment):
    missing = "ds_test_never_created"
    deployment.extra_environment["USERS_DATABASE_URL"] = any_server.database_url(missing)
    started = time.monotonic()
    finished = deployment.manage("insert_data")
    assert finished.returncode == 1
    reason = "does not exist" if any_server.vendor == "postgresql" else "Unknown database"
    assert "cannot use users_db (" in finished.stderr and missing in finished.stderr
    assert reason in finished.stderr
    assert time.monotonic() - started < 15  # not after the pool's 30 s of quiet retries


RACE_OF_REDONE_SLICES = """
import json, threading
from django.db import connections
from data_insertion.identity import record_key
from data_insertion.models import Product
from data_insertion.services import commit_records, prepare_product

COUNT = 4
barrier = threading.Barrier(COUNT)
results = [None] * COUNT

def redo(number):
    # Every attempt of slice 0 of run 9 sends the same 300 records at once.
    records = [prepare_product(name=f"Lamp {i}", price="9.99") for i in range(300)]
    for index, record in enumerate(records):
        record.instance.record_key = record_key(9, 0, index)
    try:
        barrier.wait()
        results[number] = [[r.status, r.found_committed] for r in commit_records(records)]
    finally:
        connections.close_all()

threads = [threading.Thread(target=redo, args=(n,)) for n in range(COUNT)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
keys = list(Product.objects.values_list("record_key", flat=True))
print(json.dumps({"results": results, "rows": len(keys), "distinct": len(set(keys))}))
"""


def test_attempts_of_one_slice_racing_commit_each_record_once(any_server, deployment):
    deployment.place("products_db", any_server)
    succeeded(deployment.manage("migrate", "--database", "products_db", "-v", "0"))
    outcome = deployment.python(RACE_OF_REDONE_SLICES)
    verdicts = [verdict for attempt in outcome["results"] for verdict in attempt]
    assert all(status == "inserted" for status, _ in verdicts)
    # each record inserted by one attempt and found committed by the three others
    assert sum(not found for _, found in verdicts) == 300
    assert outcome["rows"] == outcome["distinct"] == 300


def test_a_run_over_processes_reconciles_on_a_server(any_server, deployment, tmp_path):
    place_all(deployment, any_server)
    run_json = tmp_path / "run.json"
    out = succeeded(
        deployment.manage(
            "insert_data",
            "--processes",
            "2",
            "--threads",
            "4",
            "--records",
            "1000",
            "--batch-size",
            "100",
            "--json",
            str(run_json),
            "-v",
            "0",
        )  # fmt: skip
    )
    assert "rows reconcile" in out and "Spread over 2 processes" in out
    summary = json.loads(run_json.read_text())
    for alias in TABLES:
        assert deployment.rows(alias) == summary["summary"][MODELS[alias]]["inserted"]
