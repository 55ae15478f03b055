"""The dashboard's views through Django's test client: staff only, CSRF on its forms, the run
list, a run's page, starting and stopping runs, comparisons, downloads."""

import html
import io
import json
import threading

import pytest
from django.contrib.auth.models import User as Account
from django.core.management import call_command
from django.test import Client
from django.utils.html import escape

from data_insertion.runs.models import Run, RunSource, RunStatus
from tests.conftest import all_databases

pytestmark = all_databases


@pytest.fixture
def staff() -> Client:
    account = Account.objects.create_user("staff", password="a-long-password", is_staff=True)
    client = Client()
    client.force_login(account)
    return client


def recorded_run(**options) -> Run:
    call_command("insert_data", verbosity=0, stdout=io.StringIO(), **options)
    return Run.objects.order_by("-pk").first()


def join_run_thread(run_id: int) -> Run:
    for thread in threading.enumerate():
        if thread.name == f"run-{run_id}":
            thread.join()
    return Run.objects.get(pk=run_id)


@pytest.mark.parametrize("path", ["/", "/runs/1/", "/compare/?baseline=1&candidate=1"])
def test_pages_send_anonymous_and_non_staff_visitors_to_the_login(path):
    assert Client().get(path)["Location"].startswith("/admin/login/")
    account = Account.objects.create_user("visitor", password="a-long-password")
    client = Client()
    client.force_login(account)
    assert client.get(path)["Location"].startswith("/admin/login/")


def test_the_run_list_shows_runs_newest_first_with_their_figures(staff):
    first = recorded_run()
    second = recorded_run(records=40, seed=2, threads=2)
    page = staff.get("/").content.decode()
    assert page.index(f'href="/runs/{second.pk}/"') < page.index(f'href="/runs/{first.pk}/"')
    assert "PASS" in page and "completed" in page
    assert 'name="csrfmiddlewaretoken"' in page


def test_a_finished_runs_page_has_its_summary_charts_data_and_downloads(staff):
    run = recorded_run(records=60, seed=1, threads=2)
    page = staff.get(f"/runs/{run.pk}/").content.decode()
    assert escape(run.verdict) in page
    assert f"/runs/{run.pk}/report.pdf" in page and "uPlot.iife.min.js" in page
    assert 'data-finished="true"' in page
    snapshots = page.split('<script id="snapshots" type="application/json">')[1]
    assert json.loads(snapshots.split("</script>")[0])[-1]["models"][0]["model"] == "user"
    assert staff.get(f"/runs/{run.pk}/report.pdf").content.startswith(b"%PDF")
    assert staff.get(f"/runs/{run.pk}/summary.json").json()["run_id"] == run.engine_run_id


def test_the_start_form_starts_a_run_outside_the_request(staff):
    response = staff.post("/runs/start", {"threads": 2, "records": 50, "invalid_ratio": 0.1})
    run = Run.objects.get()
    assert response["Location"] == f"/runs/{run.pk}/"
    assert run.source == RunSource.DASHBOARD
    assert join_run_thread(run.pk).status == RunStatus.COMPLETED


def test_bad_options_in_the_form_name_the_field_and_start_nothing(staff):
    response = staff.post("/runs/start", {"threads": 0, "records": 50, "invalid_ratio": 2})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Ensure this value is greater than or equal to 1." in page
    assert "Ensure this value is less than or equal to 1." in page
    assert not Run.objects.exists()


def test_a_fault_from_the_form_is_shown_on_the_runs_page(staff):
    response = staff.post(
        "/runs/start",
        {"threads": 2, "records": 50, "invalid_ratio": 0.1, "faults": "orders_db:latency:1ms"},
    )
    run = join_run_thread(Run.objects.get().pk)
    assert response["Location"] == f"/runs/{run.pk}/"
    page = staff.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="faults"' in page and "orders_db latency +" in page
    # Shaded on the throughput chart: a latency fault holds all run long.
    assert fault_windows(page) == [{"label": "orders_db:latency:1ms", "start": 0.0, "end": None}]


def fault_windows(page: str) -> list[dict]:
    data = page.split('<script id="fault-windows" type="application/json">')[1]
    return json.loads(data.split("</script>")[0])


def test_a_runs_fault_windows_are_on_its_page_before_it_starts(staff):
    from data_insertion.engine import SimulationConfig
    from data_insertion.engine.faults import parse_fault
    from data_insertion.runs.recording import create_run

    config = SimulationConfig(faults=(parse_fault("users_db:lock:2s@1s"),))
    run = create_run(config, RunSource.API)
    page = staff.get(f"/runs/{run.pk}/").content.decode()
    assert fault_windows(page) == [{"label": "users_db:lock:2s@1s", "start": 1.0, "end": 3.0}]
    no_faults = create_run(SimulationConfig(), RunSource.API)
    assert fault_windows(staff.get(f"/runs/{no_faults.pk}/").content.decode()) == []


def test_a_bad_fault_in_the_form_is_named(staff):
    response = staff.post(
        "/runs/start", {"threads": 2, "records": 50, "invalid_ratio": 0.1, "faults": "x:y:z"}
    )
    assert response.status_code == 400
    assert "'x:y:z': no database 'x'" in html.unescape(response.content.decode())
    assert not Run.objects.exists()


def test_the_forms_need_a_csrf_token():
    account = Account.objects.create_user("staff", password="a-long-password", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(account)
    assert client.post("/runs/start", {"threads": 1, "records": 1}).status_code == 403
    run = Run.objects.create(source=RunSource.API, config={"threads": 1, "records": 1})
    assert client.post(f"/runs/{run.pk}/stop").status_code == 403
    assert not Run.objects.get(pk=run.pk).stop_requested


def test_the_stop_button_asks_the_run_to_stop(staff):
    run = Run.objects.create(source=RunSource.API, config={"threads": 1, "records": 1})
    assert "Stop this run" in staff.get(f"/runs/{run.pk}/").content.decode()
    staff.post(f"/runs/{run.pk}/stop")
    assert Run.objects.get(pk=run.pk).stop_requested
    assert "Stopping" in staff.get(f"/runs/{run.pk}/").content.decode()


def test_compare_shows_both_runs_and_highlights_regressions(staff):
    baseline = recorded_run(records=60, seed=1, threads=2)
    slower = dict(baseline.summary)
    slower["summary"] = {
        model: {**data, "rows_per_second": data["rows_per_second"] / 2}
        for model, data in baseline.summary["summary"].items()
    }
    candidate = Run.objects.create(
        source=RunSource.COMMAND,
        config=baseline.config,
        status=RunStatus.COMPLETED,
        summary=slower,
    )
    page = staff.get(
        f"/compare/?baseline={baseline.pk}&candidate={candidate.pk}&max_regression=10"
    ).content.decode()
    assert "3 regressions of 12 metrics" in page
    assert page.count('class="regression"') == 3
    assert "-50.0%" in page
    assert f"compare_runs {baseline.pk} {candidate.pk} --max-regression 10%" in page


def test_pages_show_no_secret(staff, monkeypatch):
    monkeypatch.setenv("DS_API_TOKEN", "do-not-show-me")
    run = recorded_run()
    for path in ("/", f"/runs/{run.pk}/", f"/runs/{run.pk}/summary.json"):
        content = staff.get(path).content.decode()
        assert "do-not-show-me" not in content
        assert "django-insecure" not in content


SHARDED_RUN_PAGE = """
import io, json
from django.contrib.auth.models import User as Account
from django.core.management import call_command
from django.test import Client
from data_insertion.housekeeping import migrate_databases
from data_insertion.models import User
from data_insertion.runs.models import Run
from data_insertion.topology import shardmap

migrate_databases()
call_command("insert_data", records=300, threads=4, invalid_ratio=0, verbosity=0,
             stdout=io.StringIO())
run = Run.objects.order_by("-pk").first()
client = Client()
client.force_login(Account.objects.create_user("staff", password="a-long-pw", is_staff=True))
page = client.get(f"/runs/{run.pk}/").content.decode()
snapshots = json.loads(page.split('<script id="snapshots" type="application/json">')[1]
                       .split("</script>")[0])
api = Client(headers={"Authorization": "Bearer sharded-page"}).get(f"/api/runs/{run.pk}").json()
print(json.dumps({
    "charts": 'id="database-charts"' in page,
    "last": {m["model"]: m["databases"] for m in snapshots[-1]["models"]},
    "api": {m["model"]: m["databases"] for m in api["progress"]["models"]},
    "users": sum(User.objects.using(alias).count() for alias in shardmap.layout("user").aliases),
}))
"""


@pytest.mark.django_db(databases=[])
def test_a_sharded_models_page_has_its_throughput_per_database(tmp_path):
    """Users over two databases (a process of its own: settings read USERS_SHARDS at start):
    the run's snapshots, in its page and the API, give each database's rows and rows/s."""
    from tests.processes import shell_json

    seen = shell_json(tmp_path, SHARDED_RUN_PAGE, USERS_SHARDS="2", DS_API_TOKEN="sharded-page")
    assert seen["charts"]
    users = seen["last"]["user"]
    assert [database["database"] for database in users] == ["users_db_0", "users_db_1"]
    assert all(database["committed"] > 0 for database in users)
    assert sum(database["committed"] for database in users) == seen["users"] == 300
    assert all("rows_per_second" in database for database in users)
    # The models in one database have no per-database series.
    assert seen["last"]["product"] == seen["last"]["order"] == []
    assert seen["api"] == seen["last"]


def test_a_running_run_silent_for_long_is_shown_lost_everywhere(staff, monkeypatch):
    """A command-line run killed with SIGKILL never records its end: once its heartbeat (its
    latest snapshot) is old, the list, its page, `runs` and the API say it is lost."""
    from datetime import timedelta

    from django.utils import timezone

    long_ago = timezone.now() - timedelta(minutes=5)
    config = {"threads": 2, "records": 10}
    lost = Run.objects.create(
        source=RunSource.COMMAND,
        config=config,
        status=RunStatus.RUNNING,
        started_at=long_ago,
        heartbeat_at=long_ago,
    )
    alive = Run.objects.create(
        source=RunSource.COMMAND,
        config=config,
        status=RunStatus.RUNNING,
        started_at=long_ago,
        heartbeat_at=timezone.now(),
    )
    rows = staff.get("/").content.decode().split("<tr>")
    lost_row = next(row for row in rows if f'href="/runs/{lost.pk}/"' in row)
    alive_row = next(row for row in rows if f'href="/runs/{alive.pk}/"' in row)
    assert ">lost</span>" in lost_row and ">running</span>" in alive_row
    page = staff.get(f"/runs/{lost.pk}/").content.decode()
    assert 'id="run-status">lost<' in page and 'id="lost"' in page
    assert 'id="lost"' not in staff.get(f"/runs/{alive.pk}/").content.decode()
    listing = io.StringIO()
    call_command("runs", stdout=listing)
    lines = {int(line.split()[0]): line.split()[1] for line in listing.getvalue().splitlines()[1:]}
    assert lines == {lost.pk: "lost", alive.pk: "running"}
    monkeypatch.setenv("DS_API_TOKEN", "lost-runs")
    api = Client(headers={"Authorization": "Bearer lost-runs"})
    assert api.get(f"/api/runs/{lost.pk}").json()["lost"] is True
    listed = {run["id"]: run["lost"] for run in api.get("/api/runs").json()["items"]}
    assert listed == {lost.pk: True, alive.pk: False}


def test_a_recorded_run_beats_at_each_snapshot():
    run = recorded_run(records=20, threads=1)
    assert run.heartbeat_at is not None and run.heartbeat_at >= run.started_at
    assert not run.lost


def test_a_finished_spread_runs_page_has_its_executors_and_redone_slices(staff):
    from tests.test_report import run_summary, spread_summary

    summary = spread_summary()
    spread = Run.objects.create(
        source=RunSource.COMMAND,
        config=summary.config,
        status=RunStatus.COMPLETED,
        summary=summary.to_dict(),
    )
    page = staff.get(f"/runs/{spread.pk}/").content.decode()
    assert "Spread over 3 processes in 3 slices." in page
    executors = page.split('<table id="executors">')[1].split("</table>")[0]
    assert "<td>host-b:102</td>" in executors and ">15,000<" in executors
    redone = page.split('<ul id="redone-slices">')[1].split("</ul>")[0]
    assert "phase 1 slice 3 redone: attempt 1 on host-c:103 abandoned" in redone
    assert "found 5,720 records committed and counted them once" in redone
    one_process = Run.objects.create(
        source=RunSource.COMMAND,
        config=run_summary().config,
        status=RunStatus.COMPLETED,
        summary=run_summary().to_dict(),
    )
    page = staff.get(f"/runs/{one_process.pk}/").content.decode()
    assert "Processes and workers" not in page and 'id="executors"' not in page
