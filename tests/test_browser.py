"""The dashboard in a real browser (Debian's chromium driven by Playwright, never a downloaded
browser): log in, start a run, watch its live chart gain points, see it complete, open a
comparison. Set DS_SCREENSHOT_DIR to keep the screenshots (the README's comes from here)."""

import io
import os
from dataclasses import asdict
from pathlib import Path

import pytest
from django.contrib.auth.models import User as Account
from django.core.management import call_command

from data_insertion.engine.faults import parse_fault
from data_insertion.runs.models import Run, RunSource, RunStatus
from tests.conftest import all_databases

pytestmark = all_databases

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "a-long-password-for-the-browser"
# Generous bounds for a shared 2-core machine; the test waits for events, it times nothing.
WAIT_MS = 180_000


@pytest.fixture
def page(monkeypatch):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    # Playwright's sync API keeps an event loop in this thread; the ORM calls of the test
    # itself are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 1000})
        finally:
            browser.close()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    return Path(os.environ.get("DS_SCREENSHOT_DIR") or tmp_path)


def test_log_in_start_a_run_watch_it_live_and_compare_it(page, live_server, screenshots):
    Account.objects.create_user("staff", password=PASSWORD, is_staff=True)
    call_command("insert_data", records=20_000, threads=4, verbosity=0, stdout=io.StringIO())
    baseline = Run.objects.get()

    page.goto(live_server.url + "/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", "staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    assert page.locator("h1").inner_text() == "Runs"

    form = page.locator("#start-form")
    form.locator("#id_threads").fill("4")
    form.locator("#id_records").fill("20000")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/runs/*/")
    run = Run.objects.exclude(pk=baseline.pk).get()
    assert run.source == RunSource.DASHBOARD

    # Points arrive by server-sent events while the page still shows a running run.
    page.wait_for_function(
        "document.getElementById('run').dataset.finished === 'false'"
        " && Number(document.getElementById('snapshot-count').textContent) >= 3",
        timeout=WAIT_MS,
    )
    assert page.locator("#throughput-chart canvas").count() == 1
    page.screenshot(path=screenshots / "run-live.png", full_page=True)

    # At the end the page reloads with the summary.
    page.wait_for_selector("#verdict", timeout=WAIT_MS)
    assert page.locator("#run-status").inner_text() == "completed"
    assert page.locator("#verdict").inner_text().startswith("PASS")
    page.screenshot(path=screenshots / "run-finished.png", full_page=True)

    page.goto(live_server.url + "/")
    compare = page.locator("#compare-form")
    compare.locator("#id_baseline").fill(str(baseline.pk))
    compare.locator("#id_candidate").fill(str(run.pk))
    compare.locator("button[type=submit]").click()
    page.wait_for_selector("#compare-verdict")
    assert page.locator("table.comparison tbody tr").count() == 12
    assert f"run {baseline.pk}" in page.locator("main").inner_text()
    page.screenshot(path=screenshots / "compare.png", full_page=True)

    # A run's fault windows are shaded on its throughput chart.
    faulted = Run.objects.create(
        source=RunSource.COMMAND,
        status=RunStatus.COMPLETED,
        config={**baseline.config, "faults": [asdict(parse_fault("users_db:lock:2s@1.5s"))]},
    )
    for snapshot in baseline.snapshots.all():
        faulted.snapshots.create(sequence=snapshot.sequence, data=snapshot.data)
    page.goto(f"{live_server.url}/runs/{faulted.pk}/")
    page.wait_for_selector("#throughput-chart[data-fault-bands='1']", timeout=WAIT_MS)
    page.locator("#throughput-chart").screenshot(path=screenshots / "run-faults.png")
