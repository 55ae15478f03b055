"""The REST API through Django's test client: bearer tokens, starting and following runs, the
event stream, reports, the stored records."""

import io
import json
import threading

import pytest
from django.core.management import call_command
from django.test import Client

from data_insertion.models import Order, Product, User
from data_insertion.runs.models import Run, RunSnapshot, RunSource, RunStatus
from data_insertion.runs.recording import execute_run
from data_insertion.runs.tokens import create_token
from tests.conftest import all_databases

pytestmark = all_databases

TOKEN = "a-token-for-the-tests"


@pytest.fixture
def api(monkeypatch) -> Client:
    monkeypatch.setenv("DS_API_TOKEN", TOKEN)
    return Client(headers={"Authorization": f"Bearer {TOKEN}"})


def finish_background_run(run_id: int) -> Run:
    """Join the thread the run executes in (tests run them in threads, settings.RUN_EXECUTOR)."""
    for thread in threading.enumerate():
        if thread.name == f"run-{run_id}":
            thread.join()
    return Run.objects.get(pk=run_id)


def test_a_started_run_answers_202_with_its_location_and_completes_with_rows_that_match(api):
    response = api.post(
        "/api/runs", {"threads": 10, "records": 2000}, content_type="application/json"
    )
    assert response.status_code == 202
    run_id = response.json()["id"]
    assert response["Location"] == f"/api/runs/{run_id}"
    finish_background_run(run_id)
    detail = api.get(response["Location"]).json()
    assert detail["status"] == "completed"
    assert detail["source"] == "api"
    assert detail["passed"] is True
    inserted = {model: data["inserted"] for model, data in detail["summary"]["summary"].items()}
    assert inserted == {
        "user": User.objects.count(),
        "product": Product.objects.count(),
        "order": Order.objects.count(),
    }
    assert detail["progress"]["models"][0]["committed"] == inserted["user"]


@pytest.mark.parametrize(
    "options, field",
    [
        ({"threads": 0}, "threads"),
        ({"threads": 1001}, "threads"),
        ({"records": -1}, "records"),
        ({"invalid_ratio": 2}, "invalid_ratio"),
        ({"batch_size": 0}, "batch_size"),
        ({"threads": "many"}, "threads"),
        ({"thread": 10}, "thread"),
        ({"faults": ["users_db:melt:2s"]}, "faults"),
        ({"faults": ["nowhere_db:lock:2s"]}, "faults"),
        ({"processes": 65}, "processes"),
    ],
)
def test_bad_options_are_422_naming_the_field_and_start_nothing(api, options, field):
    response = api.post("/api/runs", options, content_type="application/json")
    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["detail"]] == [field]
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/runs"),
        ("post", "/api/runs"),
        ("get", "/api/runs/1"),
        ("post", "/api/runs/1/stop"),
        ("get", "/api/runs/1/events"),
        ("get", "/api/runs/1/report.pdf"),
        ("get", "/api/runs/1/summary.json"),
        ("get", "/api/users"),
        ("get", "/api/products"),
        ("get", "/api/orders"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}"])
def test_every_endpoint_but_the_schema_needs_a_valid_token(api, method, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = getattr(Client(headers=headers), method)(path)
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


def test_the_openapi_schema_is_public_and_lists_every_endpoint():
    schema = Client().get("/api/openapi.json").json()
    assert set(schema["paths"]) >= {
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/stop",
        "/api/runs/{run_id}/events",
        "/api/runs/{run_id}/report.pdf",
        "/api/runs/{run_id}/summary.json",
        "/api/users",
        "/api/products",
        "/api/orders",
    }


def test_the_docs_page_draws_the_schema_with_no_internet():
    page = Client().get("/api/docs").content.decode()
    assert "/static/ninja/" in page and "cdn" not in page.lower()
    assert "/api/openapi.json" in page


def test_a_run_with_a_fault_records_it_and_its_window(api):
    response = api.post(
        "/api/runs",
        {"threads": 2, "records": 100, "seed": 1, "faults": ["users_db:latency:1ms"]},
        content_type="application/json",
    )
    run = finish_background_run(response.json()["id"])
    assert run.config["faults"][0]["spec"] == "users_db:latency:1ms"
    assert run.summary["faults"][0]["alias"] == "users_db"
    assert run.status == RunStatus.COMPLETED


def test_a_token_from_create_api_token_opens_the_api():
    token = create_token("someone")
    assert Client(headers={"Authorization": f"Bearer {token}"}).get("/api/runs").status_code == 200


def test_a_run_started_on_the_command_line_is_listed(api):
    call_command("insert_data", verbosity=0, stdout=io.StringIO())
    listing = api.get("/api/runs").json()
    assert listing["count"] == 1
    assert listing["items"][0]["source"] == "command"
    assert listing["items"][0]["status"] == "completed"
    assert "summary" not in listing["items"][0]


def test_runs_are_paginated_newest_first(api):
    for _ in range(3):
        Run.objects.create(source=RunSource.API, config={"threads": 1, "records": 1})
    first = api.get("/api/runs?limit=2").json()
    second = api.get("/api/runs?limit=2&offset=2").json()
    assert first["count"] == 3
    ids = [run["id"] for run in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 3


def test_the_event_stream_sends_each_snapshot_then_the_end(api):
    response = api.post(
        "/api/runs", {"threads": 2, "records": 200, "seed": 1}, content_type="application/json"
    )
    run = finish_background_run(response.json()["id"])
    stream = api.get(f"/api/runs/{run.pk}/events")
    assert stream["Content-Type"] == "text/event-stream"
    events = b"".join(stream.streaming_content).decode().strip().split("\n\n")
    snapshots = [event for event in events if event.startswith("event: snapshot")]
    assert len(snapshots) == RunSnapshot.objects.filter(run=run).count() >= 1
    assert events[-1].startswith("event: end")
    end = json.loads(events[-1].split("data: ", 1)[1])
    assert end["status"] == "completed"
    # A browser that reconnects with Last-Event-ID gets only what it has not seen.
    last = RunSnapshot.objects.filter(run=run).last().sequence
    resumed = b"".join(
        api.get(
            f"/api/runs/{run.pk}/events", headers={"Last-Event-ID": str(last)}
        ).streaming_content
    ).decode()
    assert "event: snapshot" not in resumed and "event: end" in resumed


def test_stop_marks_the_run_and_a_queued_run_never_starts(api):
    run = Run.objects.create(source=RunSource.API, config={"threads": 1, "records": 10})
    response = api.post(f"/api/runs/{run.pk}/stop")
    assert response.status_code == 202 and response.json()["stop_requested"] is True
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.INTERRUPTED
    assert not User.objects.exists()


def test_summary_and_report_of_a_finished_run(api):
    response = api.post("/api/runs", {"records": 10}, content_type="application/json")
    run = finish_background_run(response.json()["id"])
    summary = api.get(f"/api/runs/{run.pk}/summary.json").json()
    assert summary["run_id"] == run.engine_run_id
    pdf = api.get(f"/api/runs/{run.pk}/report.pdf")
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")


def test_an_unfinished_run_has_no_report_yet(api):
    run = Run.objects.create(source=RunSource.API, config={"threads": 1, "records": 10})
    assert api.get(f"/api/runs/{run.pk}/report.pdf").status_code == 409
    assert api.get(f"/api/runs/{run.pk}/summary.json").status_code == 409
    assert api.get("/api/runs/999999").status_code == 404


def test_stored_records_come_with_limit_and_offset(api):
    call_command("insert_data", verbosity=0, stdout=io.StringIO())
    users = api.get("/api/users?limit=3&offset=1").json()
    assert users["count"] == User.objects.count()
    assert [user["id"] for user in users["items"]] == list(
        User.objects.values_list("id", flat=True)[1:4]
    )
    assert set(users["items"][0]) == {"id", "name", "email", "created_at"}
    assert api.get("/api/orders?limit=1").json()["count"] == Order.objects.count()
    assert api.get("/api/products?limit=1").json()["count"] == Product.objects.count()


SHARDED_LISTS = """
import json
from django.test import Client
from data_insertion.engine import SimulationConfig, run_simulation
from data_insertion.housekeeping import migrate_databases
from data_insertion.models import User
from data_insertion.topology import shardmap

migrate_databases()
run_simulation(SimulationConfig(threads=4, records=300, invalid_ratio=0))
layout = shardmap.layout("user")
stored = sorted(
    pk for alias in layout.aliases for pk in User.objects.using(alias).values_list("pk", flat=True)
)
client = Client(headers={"Authorization": "Bearer sharded-lists"})
pages = [client.get(f"/api/users?limit=100&offset={n}").json() for n in (0, 100, 200, 300)]
print(json.dumps({
    "stored": stored,
    "per_database": [User.objects.using(alias).count() for alias in layout.aliases],
    "count": pages[0]["count"],
    "listed": [user["id"] for page in pages for user in page["items"]],
}))
"""


@pytest.mark.django_db(databases=[])
def test_the_records_of_a_sharded_model_are_listed_across_its_databases(tmp_path):
    """Users over two databases (a process of its own: settings read USERS_SHARDS at start)."""
    from tests.processes import shell_json

    seen = shell_json(tmp_path, SHARDED_LISTS, USERS_SHARDS="2", DS_API_TOKEN="sharded-lists")
    assert all(seen["per_database"]) and sum(seen["per_database"]) == 300
    assert seen["count"] == 300
    assert seen["listed"] == seen["stored"]  # every user once, in id order, over the pages


def test_a_run_spread_over_processes_can_be_started_from_the_api(api):
    response = api.post(
        "/api/runs",
        {"threads": 2, "records": 300, "seed": 1, "processes": 2},
        content_type="application/json",
    )
    assert response.status_code == 202
    run = finish_background_run(response.json()["id"])
    summary = api.get(f"/api/runs/{run.pk}/summary.json").json()
    assert summary["ok"] and summary["scale_out"]["transport"] == "processes"
    assert len(summary["scale_out"]["executors"]) == 2


@pytest.mark.parametrize(
    "options, message",
    [
        ({"celery": True, "processes": 2}, "celery and processes cannot be combined"),
        ({"slices": 4}, "slices needs processes N (N > 1) or celery"),
    ],
)
def test_a_spread_the_engine_cannot_honour_is_422_in_the_command_line_words(api, options, message):
    response = api.post("/api/runs", options, content_type="application/json")
    assert response.status_code == 422
    assert message in json.dumps(response.json())
    assert not Run.objects.exists()
