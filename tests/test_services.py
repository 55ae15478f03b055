"""The public API: three statuses, every rule enforced, uniqueness and references race-free."""

import threading
from decimal import Decimal

import pytest
from django.db import OperationalError, connections

from data_insertion import services
from data_insertion.models import Order, Product, User
from data_insertion.results import Status
from data_insertion.services import (
    DUPLICATE_EMAIL,
    UNKNOWN_PRODUCT,
    UNKNOWN_USER,
    insert_order,
    insert_product,
    insert_user,
)
from tests.conftest import all_databases

pytestmark = all_databases


def race(count: int, target) -> list:
    """Run target(i) in `count` threads released together; return their results."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(i):
        try:
            barrier.wait()
            results[i] = target(i)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_a_valid_user_is_inserted_with_its_values_verbatim():
    name = 'Robert\'); DROP TABLE users;-- "Zoë" 李雷'
    result = insert_user(name=name, email="bobby@example.com")
    assert result.status == Status.INSERTED
    assert result.errors == {}
    assert result.latency > 0
    assert result.thread == threading.current_thread().name
    stored = User.objects.get(pk=result.pk)
    assert (stored.name, stored.email) == (name, "bobby@example.com")


def test_result_is_immutable():
    result = insert_user(name="A", email="a@example.com")
    with pytest.raises(AttributeError):
        result.status = Status.REJECTED


@pytest.mark.parametrize(
    "name, email, field",
    [
        ("", "a@example.com", "name"),
        ("   ", "a@example.com", "name"),
        ("N" * 101, "a@example.com", "name"),
        ("nul\x00", "a@example.com", "name"),
        ("Bob", "bob-at-example.com", "email"),
        ("Bob", "b" * 250 + "@example.com", "email"),
        (None, None, "name"),
    ],
)
def test_invalid_users_are_rejected_with_reasons_and_no_row(name, email, field):
    result = insert_user(name=name, email=email)
    assert result.status == Status.REJECTED
    assert result.pk is None
    assert result.errors[field]
    assert User.objects.count() == 0


def test_email_uniqueness_ignores_letter_case():
    assert insert_user(name="A", email="Same@Example.com").status == Status.INSERTED
    second = insert_user(name="B", email="same@EXAMPLE.com")
    assert second.status == Status.REJECTED
    assert second.errors == {"email": [DUPLICATE_EMAIL]}
    assert User.objects.count() == 1


def test_same_email_from_64_threads_commits_once():
    results = race(
        64,
        lambda i: insert_user(
            name=f"Racer {i}", email="Race.Same@Example.com" if i % 2 else "race.same@example.com"
        ),
    )
    statuses = [r.status for r in results]
    assert statuses.count(Status.INSERTED) == 1
    assert statuses.count(Status.REJECTED) == 63
    assert User.objects.filter(email_normalized="race.same@example.com").count() == 1


@pytest.mark.parametrize("price", ["0", "19.99", 19.99, 0, "99999999.99", " 5.5 "])
def test_valid_prices_are_inserted(price):
    result = insert_product(name="Widget", price=price)
    assert result.status == Status.INSERTED
    assert Product.objects.get(pk=result.pk).price == Decimal(str(price).strip())


@pytest.mark.parametrize(
    "price", ["abc", "-0.01", "1.999", "NaN", "inf", float("nan"), "100000000", None, "", [1]]
)
def test_invalid_prices_are_rejected_without_an_exception(price):
    result = insert_product(name="Widget", price=price)
    assert result.status == Status.REJECTED
    assert "price" in result.errors
    assert Product.objects.count() == 0


def test_orders_need_an_existing_user_and_product():
    user = insert_user(name="A", email="a@example.com")
    product = insert_product(name="P", price="1")
    ok = insert_order(user_id=user.pk, product_id=product.pk, quantity="3")
    assert ok.status == Status.INSERTED
    assert Order.objects.get(pk=ok.pk).quantity == 3

    missing = insert_order(user_id=user.pk + 100, product_id=product.pk + 100, quantity=1)
    assert missing.status == Status.REJECTED
    assert missing.errors == {"user_id": [UNKNOWN_USER], "product_id": [UNKNOWN_PRODUCT]}
    assert Order.objects.count() == 1


@pytest.mark.parametrize("quantity", [0, -1, 1_000_001, 2**70, "many", 1.5, True, None, "1e3"])
def test_invalid_quantities_are_rejected(quantity):
    user = insert_user(name="A", email="a@example.com")
    product = insert_product(name="P", price="1")
    result = insert_order(user_id=user.pk, product_id=product.pk, quantity=quantity)
    assert result.status == Status.REJECTED
    assert "quantity" in result.errors
    assert Order.objects.count() == 0


@pytest.mark.parametrize("value", ["abc", None, 2**70, -5])
def test_unusable_ids_are_rejected(value):
    result = insert_order(user_id=value, product_id=value, quantity=1)
    assert result.status == Status.REJECTED
    assert set(result.errors) == {"user_id", "product_id"}


def test_transient_errors_are_retried_then_committed(monkeypatch):
    real_insert_rows = services.insert_rows
    calls = {"n": 0}

    def flaky_insert_rows(instances, alias):
        calls["n"] += 1
        if calls["n"] < 3:
            raise OperationalError("database is locked")
        real_insert_rows(instances, alias)

    monkeypatch.setattr(services, "insert_rows", flaky_insert_rows)
    monkeypatch.setattr(services, "BACKOFF_SECONDS", 0.001)
    result = insert_user(name="A", email="a@example.com")
    assert result.status == Status.INSERTED
    assert result.attempts == 3
    assert User.objects.count() == 1


def test_an_error_that_outlasts_the_retries_is_failed_with_its_text(monkeypatch):
    def locked(instances, alias):
        raise OperationalError("database is locked")

    monkeypatch.setattr(services, "insert_rows", locked)
    monkeypatch.setattr(services, "BACKOFF_SECONDS", 0.001)
    result = insert_product(name="P", price="1")
    assert result.status == Status.FAILED
    assert result.attempts == services.MAX_ATTEMPTS
    assert result.errors == {"database": ["products_db: database is locked"]}
    assert Product.objects.count() == 0


def test_a_retry_after_a_rolled_back_insert_still_sees_another_writers_email(monkeypatch):
    """The first attempt inserts, then its transaction is lost and rolled back, so the record
    holds an id no row has; meanwhile another writer commits the same email and SQLite hands
    it that very id. The retry must not take that row for the record's own."""
    real_insert_rows = services.insert_rows
    attempts = []

    def insert_then_lose_the_transaction(instances, alias):
        real_insert_rows(instances, alias)
        attempts.append(instances[0].pk)
        if len(attempts) == 1:
            raise OperationalError("database is locked")  # transient: rolled back, retried

    def another_writer_meanwhile(attempt):
        User.objects.create(name="Other", email="a@x.com", email_normalized="a@x.com")

    monkeypatch.setattr(services, "insert_rows", insert_then_lose_the_transaction)
    monkeypatch.setattr(services, "_sleep_before_retry", another_writer_meanwhile)
    result = insert_user(name="A", email="A@x.com")
    assert result.status == Status.REJECTED
    assert result.errors == {"email": [DUPLICATE_EMAIL]}
    assert list(User.objects.values_list("name", flat=True)) == ["Other"]
