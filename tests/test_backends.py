"""Write transactions on SQLite run on the DB-API connection: they must still be all or nothing,
nest inside a caller's transaction, and raise Django's exceptions (several cases from a review)."""

import threading
import time

import pytest
from django.db import DatabaseError, IntegrityError, OperationalError, connections, transaction

from data_insertion.models import Product, User
from data_insertion.persistence import insert_rows
from data_insertion.results import Status
from data_insertion.services import DUPLICATE_EMAIL, insert_product, save_checked
from data_insertion.topology import backend
from tests.conftest import all_databases

pytestmark = all_databases

ALIAS = "products_db"


class Abandon(Exception):
    pass


def product(name: str | None) -> Product:
    return Product(name=name, price="1.00")


def names() -> list[str]:
    return sorted(Product.objects.values_list("name", flat=True))


def test_a_write_transaction_commits_its_rows():
    with backend(ALIAS).write_transaction():
        insert_rows([product("kept")], ALIAS)
    assert names() == ["kept"]


def test_an_exception_rolls_the_whole_transaction_back_and_the_connection_stays_usable():
    with pytest.raises(Abandon), backend(ALIAS).write_transaction():
        insert_rows([product("first")], ALIAS)
        insert_rows([product("second")], ALIAS)
        raise Abandon
    assert names() == []
    assert not connections[ALIAS].connection.in_transaction
    with backend(ALIAS).write_transaction():
        insert_rows([product("after")], ALIAS)
    assert names() == ["after"]


def test_a_failed_statement_in_a_savepoint_undoes_only_the_savepoint():
    with backend(ALIAS).write_transaction():
        insert_rows([product("before")], ALIAS)
        with pytest.raises(IntegrityError), backend(ALIAS).savepoint():
            insert_rows([product("inside")], ALIAS)
            insert_rows([product(None)], ALIAS)  # NOT NULL: the driver's error, as Django's
        insert_rows([product("after")], ALIAS)
    assert names() == ["after", "before"]


def test_driver_errors_arrive_as_django_errors():
    with pytest.raises(DatabaseError), backend(ALIAS).write_transaction():
        insert_rows([product(None)], ALIAS)
    assert names() == []


def test_inside_a_callers_transaction_it_is_a_savepoint_of_that_transaction():
    """The admin saves inside Django's atomic(): the write nests instead of beginning anew."""
    with transaction.atomic(using=ALIAS):
        insert_rows([product("outer")], ALIAS)
        with pytest.raises(Abandon), backend(ALIAS).write_transaction():
            insert_rows([product("inner")], ALIAS)
            raise Abandon
        with backend(ALIAS).write_transaction():
            insert_rows([product("inner, kept")], ALIAS)
    assert names() == ["inner, kept", "outer"]


def test_saving_a_changed_record_outside_any_transaction_checks_and_saves_it():
    """save_checked() outside the admin's atomic(): the ORM's save() runs in the DB-API
    transaction, and the email check still sees other rows."""
    taken = User(name="A", email="a@example.com")
    taken.full_clean()
    assert save_checked(taken) == {}
    other = User(name="B", email="b@example.com")
    other.full_clean()
    assert save_checked(other) == {}
    other.email = "A@example.com"
    other.full_clean()
    assert save_checked(other) == {"email": [DUPLICATE_EMAIL]}
    other.name = "B2"
    other.email = "b2@example.com"
    other.full_clean()
    assert save_checked(other) == {}
    assert sorted(User.objects.values_list("name", "email")) == [
        ("A", "a@example.com"),
        ("B2", "b2@example.com"),
    ]


def test_when_sqlite_rolls_the_transaction_back_itself_its_error_is_the_one_raised():
    """An interrupt (like some I/O errors) makes SQLite roll back the whole transaction: the
    savepoint's cleanup must not hide why."""
    with pytest.raises(OperationalError, match="interrupted"), backend(ALIAS).write_transaction():
        insert_rows([product("before")], ALIAS)
        dbapi = connections[ALIAS].connection
        with backend(ALIAS).savepoint():
            dbapi.set_progress_handler(lambda: 1, 1)  # interrupt the next statement
            try:
                insert_rows([product("interrupted")], ALIAS)
            finally:
                dbapi.set_progress_handler(None, 1)
    assert names() == []


def test_a_savepoint_outside_a_transaction_is_refused():
    """SAVEPOINT outside a transaction would begin one that RELEASE commits."""
    connections[ALIAS].ensure_connection()
    with pytest.raises(OperationalError), backend(ALIAS).savepoint():
        insert_rows([product("alone")], ALIAS)
    assert names() == []


def test_a_connection_closed_inside_a_write_transaction_is_not_reopened_to_autocommit():
    with pytest.raises(DatabaseError), backend(ALIAS).write_transaction():
        insert_rows([product("first")], ALIAS)
        connections[ALIAS].close()
        insert_rows([product("second")], ALIAS)
    assert names() == []


def test_with_autocommit_turned_off_the_write_joins_the_callers_transaction():
    transaction.set_autocommit(False, using=ALIAS)
    try:
        Product.objects.create(name="caller's", price="1.00")
        result = insert_product(name="through the service", price="2.00")
        transaction.rollback(using=ALIAS)
    finally:
        transaction.set_autocommit(True, using=ALIAS)
    assert result.status == Status.INSERTED
    assert names() == []


def test_a_callers_own_transaction_and_a_workers_turn_do_not_wait_for_each_other():
    """A caller inside its own atomic() (the admin's views) holds the file's write lock; an
    engine worker holding its turn (the process's lock) waits for the file's. The caller must
    not then wait for the process's lock: each would wait for the other."""
    from data_insertion.services import insert_user

    verdicts = {}
    in_outer = threading.Event()

    def caller_with_own_transaction():
        with transaction.atomic(using="users_db"):  # BEGIN IMMEDIATE: the file's write lock
            in_outer.set()
            time.sleep(0.3)  # the worker takes its turn meanwhile and waits for the file
            verdicts["outer"] = insert_user(name="Outer", email="outer@example.com")
        connections.close_all()

    def worker_in_its_turn():
        in_outer.wait()
        with backend("users_db").writer_lock():
            verdicts["worker"] = insert_user(name="Worker", email="worker@example.com")
        connections.close_all()

    threads = [
        threading.Thread(target=f) for f in (caller_with_own_transaction, worker_in_its_turn)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert verdicts["outer"].status == verdicts["worker"].status == Status.INSERTED
    assert verdicts["worker"].attempts == 1  # it waited for the caller's commit, then went in
