"""Group commit: batches keep every record's own verdict, uniqueness and references."""

import threading

from django.db import DatabaseError

from data_insertion import services
from data_insertion.engine import SimulationConfig, run_simulation
from data_insertion.models import Order, Product, User
from data_insertion.results import Status
from data_insertion.services import (
    DUPLICATE_EMAIL,
    commit_records,
    prepare_order,
    prepare_product,
    prepare_user,
)
from tests.conftest import all_databases

pytestmark = all_databases


def test_a_batch_gives_each_record_its_own_verdict():
    batch = [
        prepare_user(name="A", email="a@example.com"),
        prepare_user(name="", email="b@example.com"),  # its own field rule
        prepare_user(name="C", email="A@EXAMPLE.com"),  # repeats the first within the batch
        prepare_user(name="D", email="d@example.com"),
    ]
    results = commit_records(batch)
    assert [r.status for r in results] == [
        Status.INSERTED,
        Status.REJECTED,
        Status.REJECTED,
        Status.INSERTED,
    ]
    assert results[2].errors == {"email": [DUPLICATE_EMAIL]}
    assert sorted(User.objects.values_list("email", flat=True)) == [
        "a@example.com",
        "d@example.com",
    ]
    assert {r.pk for r in results if r.pk} == set(User.objects.values_list("id", flat=True))


def test_a_batch_rejects_emails_committed_earlier():
    services.insert_user(name="A", email="taken@example.com")
    results = commit_records(
        [prepare_user(name="B", email="TAKEN@example.com"), prepare_user(name="C", email="c@e.co")]
    )
    assert [r.status for r in results] == [Status.REJECTED, Status.INSERTED]


def test_a_batch_checks_references_per_order():
    user = services.insert_user(name="A", email="a@example.com")
    product = services.insert_product(name="P", price="1")
    results = commit_records(
        [
            prepare_order(user_id=user.pk, product_id=product.pk, quantity=1),
            prepare_order(user_id=user.pk + 50, product_id=product.pk, quantity=1),
            prepare_order(user_id=user.pk, product_id=product.pk + 50, quantity=2),
        ]
    )
    assert [r.status for r in results] == [Status.INSERTED, Status.REJECTED, Status.REJECTED]
    assert Order.objects.count() == 1


def test_one_bad_row_fails_alone_when_the_batch_insert_fails(monkeypatch):
    """The bulk insert fails; each row is retried in its own savepoint; only the bad one fails."""
    real_insert_rows = services.insert_rows

    def refuse_bulk_and_bad(instances, alias):
        if len(instances) > 1:
            raise DatabaseError("bulk insert refused")
        if instances[0].name == "Bad":
            raise DatabaseError("this row cannot be written")
        real_insert_rows(instances, alias)

    monkeypatch.setattr(services, "insert_rows", refuse_bulk_and_bad)
    batch = [prepare_product(name=name, price="1") for name in ("Good", "Bad", "Fine")]
    results = commit_records(batch)
    assert [r.status for r in results] == [Status.INSERTED, Status.FAILED, Status.INSERTED]
    assert results[1].errors == {"database": ["this row cannot be written"]}
    assert sorted(Product.objects.values_list("name", flat=True)) == ["Fine", "Good"]


def test_latency_and_thread_belong_to_the_submitting_thread():
    records = []

    def prepare():
        records.append(prepare_product(name="P", price="2"))

    thread = threading.Thread(target=prepare, name="submitter-7")
    thread.start()
    thread.join()
    (result,) = commit_records(records)
    assert result.thread == "submitter-7"
    assert result.latency > 0


def test_group_commit_run_gives_the_same_counts_as_per_record_mode():
    config = SimulationConfig(threads=12, records=400, seed=11, invalid_ratio=0.2)
    per_record = run_simulation(config)
    batched = run_simulation(SimulationConfig(**{**config.__dict__, "batch_size": 50}))
    for model in ("user", "product", "order"):
        a, b = per_record.models[model], batched.models[model]
        assert (a.inserted, a.rejected, a.failed) == (b.inserted, b.rejected, b.failed)
    assert batched.reconciled and batched.failed == 0
    assert len(batched.models["user"].threads) == 12  # verdicts carry the workers' names


def test_same_email_from_64_threads_in_group_commit_commits_once():
    # Every generated duplicate targets an earlier address: one of each pair is committed.
    summary = run_simulation(SimulationConfig(threads=64, records=2_000, seed=5, batch_size=100))
    emails = list(User.objects.values_list("email_normalized", flat=True))
    assert len(emails) == len(set(emails)) == summary.models["user"].inserted
