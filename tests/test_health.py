"""The health of every database and of the cache: `manage.py health`, GET /api/health and the
dashboard's panel."""

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import Client

from data_insertion.services import insert_user
from tests.conftest import CLOSED_PORT_URL, REDIS_URL, all_databases, point_cache_at
from tests.processes import manage

pytestmark = all_databases
TOKEN = "a-token-for-the-tests"
ALIASES = ("default", "users_db", "products_db", "orders_db")


def point_users_db_at_a_missing_directory(monkeypatch, tmp_path) -> None:
    connections["users_db"].close()
    monkeypatch.setitem(connections.settings["users_db"], "NAME", tmp_path / "gone" / "users.db")


@pytest.fixture
def api(monkeypatch) -> Client:
    monkeypatch.setenv("DS_API_TOKEN", TOKEN)
    return Client(headers={"Authorization": f"Bearer {TOKEN}"})


def test_health_lists_every_database_with_its_rows_and_the_cache(settings, prefix):
    point_cache_at(settings, REDIS_URL, prefix)
    insert_user(name="Zoë", email="zoe@example.com")
    output = io.StringIO()
    call_command("health", "--json", stdout=output)

    report = json.loads(output.getvalue())
    assert report["healthy"] is True
    by_alias = {database["alias"]: database for database in report["databases"]}
    assert set(by_alias) == set(ALIASES)
    users = by_alias["users_db"]
    assert users["reachable"] and users["engine"] == "sqlite" and users["breaker"] == "closed"
    assert users["tables"]["data_insertion_user"] == 1
    assert users["size_bytes"] > 0 and users["latency_ms"] >= 0
    cache = report["cache"]
    assert cache["configured"] and cache["reachable"] and cache["location"] == "127.0.0.1:6379/1"
    assert 0 <= cache["hit_ratio"] <= 1


def test_health_exits_1_naming_an_unreachable_database(monkeypatch, tmp_path):
    point_users_db_at_a_missing_directory(monkeypatch, tmp_path)
    output = io.StringIO()
    with pytest.raises(CommandError, match="Unhealthy: users_db unreachable") as raised:
        call_command("health", stdout=output)
    assert raised.value.returncode == 1
    line = next(line for line in output.getvalue().splitlines() if line.startswith("users_db"))
    assert " NO " in line
    assert "error: no such file" in output.getvalue()
    assert "products_db" in output.getvalue() and "Cache: none" in output.getvalue()


def test_health_names_a_refused_server_and_never_its_password(tmp_path):
    result = manage(
        tmp_path,
        "health",
        env={"USERS_DATABASE_URL": "postgres://app:s3cret-pw@127.0.0.1:1/users"},
        timeout=60,
    )
    assert result.returncode == 1
    assert "users_db unreachable" in result.stderr
    users = result.stdout[result.stdout.index("users_db") :]
    assert users.startswith("users_db     postgresql NO")
    assert "127.0.0.1:1/users" in users and "refused" in users
    assert "s3cret-pw" not in result.stdout + result.stderr


def test_an_unreachable_cache_is_unhealthy(settings, prefix):
    point_cache_at(settings, CLOSED_PORT_URL, prefix)
    output = io.StringIO()
    with pytest.raises(CommandError, match="the cache unreachable"):
        call_command("health", stdout=output)
    assert "Cache: 127.0.0.1:1/1 UNREACHABLE" in output.getvalue()


def test_the_api_answers_200_when_healthy_and_503_when_a_database_is_not(
    api, monkeypatch, tmp_path
):
    healthy = api.get("/api/health")
    assert healthy.status_code == 200 and healthy.json()["healthy"] is True

    point_users_db_at_a_missing_directory(monkeypatch, tmp_path)
    unhealthy = api.get("/api/health")
    assert unhealthy.status_code == 503
    users = next(d for d in unhealthy.json()["databases"] if d["alias"] == "users_db")
    assert users["reachable"] is False and "no such file" in users["error"]


def test_the_api_needs_a_token_for_health():
    assert Client().get("/api/health").status_code == 401


def test_the_dashboard_has_a_health_panel_fed_by_its_own_json():
    account = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(account)
    page = client.get("/")
    assert 'id="health"' in page.content.decode() and "web/health.js" in page.content.decode()
    report = client.get("/health.json")
    assert report.status_code == 200
    assert [d["alias"] for d in report.json()["databases"]] == list(ALIASES)
