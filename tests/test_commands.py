"""The commands through call_command: the seed's lines, JSON, exit codes."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from data_insertion.models import Order, Product, User
from tests.conftest import all_databases

pytestmark = all_databases


def run(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def test_insert_data_prints_the_seed_lines_summary_and_completion():
    out = run("insert_data")
    assert "Inserted user: Alice" in out
    assert "Inserted user: Zoë" in out
    assert "Inserted product: Laptop" in out
    assert "Inserted order for user_id: " in out
    assert "Rejected user: Bob - email: Enter a valid email address." in out
    assert (
        "Rejected product: Keyboard - price: Ensure this value is greater than or equal to 0."
        in out
    )
    assert "rows reconcile" in out
    assert out.rstrip().endswith("Data insertion completed")
    printed = {m: out.count(f"Inserted {m}") for m in ("user", "product", "order")}
    assert printed == {
        "user": User.objects.count(),
        "product": Product.objects.count(),
        "order": Order.objects.count(),
    }


def test_simulate_insertions_is_the_same_command():
    out = run("simulate_insertions", records=20, seed=1, threads=4)
    assert "Data insertion completed" in out
    assert User.objects.count() > 0


def test_verbosity_zero_prints_only_the_summary():
    out = run("insert_data", verbosity=0)
    assert "Inserted user" not in out
    assert "Attempted" in out and "Data insertion completed" in out


def test_verbosity_one_caps_record_lines_and_two_shows_all():
    out = run("insert_data", records=150, seed=2, threads=3, invalid_ratio=0, verbosity=1)
    assert out.count("Inserted user:") == 100
    assert "-v 2 shows every record" in out
    out = run("insert_data", records=150, seed=2, threads=3, invalid_ratio=0, verbosity=2)
    assert out.count("Inserted user:") == 150


def test_json_summary_equals_the_rows_in_each_database(output_dir):
    path = output_dir / "run.json"
    run("insert_data", records=300, seed=9, threads=30, json=str(path), verbosity=0)
    data = json.loads(path.read_text())
    assert data["config"]["threads"] == 30 and data["config"]["seed"] == 9
    summary = data["summary"]
    assert summary["user"]["inserted"] == User.objects.count()
    assert summary["product"]["inserted"] == Product.objects.count()
    assert summary["order"]["inserted"] == Order.objects.count()
    for model in summary.values():
        assert model["attempted"] == 300 and model["failed"] == 0
        assert model["latency_ms"]["p99"] >= model["latency_ms"]["p50"] > 0
    assert data["ok"] is True


def test_a_json_path_in_a_missing_directory_fails_before_running(output_dir):
    with pytest.raises(CommandError, match="does not exist"):
        run("insert_data", json=str(output_dir / "missing" / "run.json"))
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    "option, value",
    [("--threads", "0"), ("--threads", "1001"), ("--records", "-1"), ("--invalid-ratio", "2")],
)
def test_out_of_range_options_are_refused(option, value):
    with pytest.raises(CommandError, match=option.lstrip("-").replace("-", "_") + "|" + option):
        call_command("insert_data", option, value, stdout=io.StringIO())
    assert User.objects.count() == 0


def test_failed_records_make_the_command_exit_non_zero(monkeypatch):
    from django.db import OperationalError

    from data_insertion import services

    def locked(instances, alias):
        if instances[0]._meta.model_name == "product":
            raise OperationalError("database is locked")
        real_insert_rows(instances, alias)

    real_insert_rows = services.insert_rows
    monkeypatch.setattr(services, "insert_rows", locked)
    monkeypatch.setattr(services, "BACKOFF_SECONDS", 0.0001)
    with pytest.raises(CommandError) as error:
        run("insert_data", verbosity=0)
    assert error.value.returncode == 1
    assert "failed" in str(error.value)
