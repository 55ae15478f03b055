"""Write transactions on SQLite run on the DB-API connection: they must still be all or nothing,
nest inside a caller's transaction, and raise Django's exceptions."""

import pytest
from django.db import DatabaseError, IntegrityError, connections, transaction

from data_insertion.models import Product, User
from data_insertion.services import DUPLICATE_EMAIL, save_checked
from data_insertion.statements import insert_row
from data_insertion.transactions import savepoint, write_transaction
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
    with write_transaction(ALIAS):
        insert_row(product("kept"), ALIAS)
    assert names() == ["kept"]


def test_an_exception_rolls_the_whole_transaction_back_and_the_connection_stays_usable():
    with pytest.raises(Abandon), write_transaction(ALIAS):
        insert_row(product("first"), ALIAS)
        insert_row(product("second"), ALIAS)
        raise Abandon
    assert names() == []
    assert not connections[ALIAS].connection.in_transaction
    with write_transaction(ALIAS):
        insert_row(product("after"), ALIAS)
    assert names() == ["after"]


def test_a_failed_statement_in_a_savepoint_undoes_only_the_savepoint():
    with write_transaction(ALIAS):
        insert_row(product("before"), ALIAS)
        with pytest.raises(IntegrityError), savepoint(ALIAS):
            insert_row(product("inside"), ALIAS)
            insert_row(product(None), ALIAS)  # NOT NULL: the driver's error, as Django's
        insert_row(product("after"), ALIAS)
    assert names() == ["after", "before"]


def test_driver_errors_arrive_as_django_errors():
    with pytest.raises(DatabaseError), write_transaction(ALIAS):
        insert_row(product(None), ALIAS)
    assert names() == []


def test_inside_a_callers_transaction_it_is_a_savepoint_of_that_transaction():
    """The admin saves inside Django's atomic(): the write nests instead of beginning anew."""
    with transaction.atomic(using=ALIAS):
        insert_row(product("outer"), ALIAS)
        with pytest.raises(Abandon), write_transaction(ALIAS):
            insert_row(product("inner"), ALIAS)
            raise Abandon
        with write_transaction(ALIAS):
            insert_row(product("inner, kept"), ALIAS)
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
