"""Sharding on real PostgreSQL and MariaDB servers, several databases per server: rows spread
over each model's databases and reconciled, the email race across shards, and (PostgreSQL) a
rebalance under a concurrent run. Needs DS_TEST_POSTGRES_URL / DS_TEST_MARIADB_URL (see
tests/servers.py); the shard maps stay in a SQLite default database in the test's directory."""

import json

from tests.servers import TABLES, Deployment

MODELS = {"users_db": "user", "products_db": "product", "orders_db": "order"}


def shard_all(deployment: Deployment, on, databases: int, used: int) -> None:
    """Every model over `used` of `databases` new databases of `on`."""
    for alias in TABLES:
        deployment.place_shards(alias, on, databases)
    deployment.extra_environment["DS_SHARDS"] = str(used)


def succeeded(finished) -> str:
    assert finished.returncode == 0, (
        f"exit {finished.returncode}\n{finished.stdout}\n{finished.stderr}"
    )
    return finished.stdout


def inserted(document: dict) -> dict[str, int]:
    return {model: document["summary"][model]["inserted"] for model in MODELS.values()}


def test_two_databases_per_model_hold_every_row_once_and_verify_clean(
    any_server, deployment, tmp_path
):
    shard_all(deployment, any_server, databases=2, used=2)
    run_json = tmp_path / "run.json"
    out = succeeded(
        deployment.manage(
            "insert_data", "--threads", "20", "--records", "600", "--json", str(run_json)
        )
    )
    assert "rows reconcile" in out
    counts = inserted(json.loads(run_json.read_text()))
    for alias, model in MODELS.items():
        per_database = deployment.shard_ids(alias)
        ids = [row_id for ids in per_database for row_id in ids]
        assert len(ids) == len(set(ids)) == counts[model] > 0
        assert all(per_database), f"a {model} database is empty"
    audit = succeeded(deployment.manage("verify_data"))
    assert "No problems found in users_db_0, users_db_1" in audit


RACE = """
import json, threading
from django.db import connections
from data_insertion.housekeeping import migrate_databases
from data_insertion.services import insert_user
migrate_databases()
barrier = threading.Barrier(64)
results = []
def racer(n):
    email = ''.join(c.upper() if n >> i & 1 else c for i, c in enumerate('race@x.org'))
    barrier.wait()
    try:
        results.append(str(insert_user(name=f'r{n}', email=email).status))
    finally:
        connections.close_all()
threads = [threading.Thread(target=racer, args=(n,)) for n in range(64)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps({"statuses": sorted(results)}))
"""


def test_same_email_from_64_threads_commits_once_across_server_shards(any_server, deployment):
    shard_all(deployment, any_server, databases=2, used=2)
    statuses = deployment.python(RACE)["statuses"]
    assert len(statuses) == 64
    assert statuses.count("inserted") == 1
    assert sum(len(ids) for ids in deployment.shard_ids("users_db")) == 1


def test_rebalance_from_2_to_3_databases_under_a_run_loses_and_repeats_nothing(
    postgres, deployment, tmp_path
):
    shard_all(deployment, postgres, databases=3, used=2)
    # Two processes with a pool per database, nine databases each: kept under the server's
    # max_connections (100).
    deployment.extra_environment["DS_MAX_CONNECTIONS_PER_DATABASE"] = "3"
    first_json, second_json = tmp_path / "first.json", tmp_path / "second.json"
    succeeded(deployment.manage("insert_data", "--records", "1000", "--json", str(first_json)))
    run = deployment.start(
        "insert_data", "--threads", "20", "--records", "3000", "--json", str(second_json)
    )
    rebalanced = succeeded(deployment.manage("rebalance", "--shards", "3"))
    assert "2 -> 3 databases" in rebalanced
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr
    first, second = (inserted(json.loads(path.read_text())) for path in (first_json, second_json))
    for alias, model in MODELS.items():
        per_database = deployment.shard_ids(alias)
        ids = [row_id for ids in per_database for row_id in ids]
        assert len(ids) == len(set(ids)) == first[model] + second[model]
        assert all(per_database), f"a {model} database is empty after the rebalance"
    audit = succeeded(deployment.manage("verify_data"))
    assert "users_db_0, users_db_1, users_db_2" in audit
