"""The one insert path writes what Model.save() would write, for every model and every column,
so that a new field (a default, auto_now_add, a pre_save of its own) cannot drift silently."""

import datetime

import pytest
from django.apps import apps
from django.db import connections
from django.utils import timezone

from data_insertion.persistence import existing_rows, insert_rows
from data_insertion.topology import backend, database_for_model
from tests.conftest import all_databases

pytestmark = all_databases

FROZEN = datetime.datetime(2025, 5, 4, 12, 30, 15, 123456, tzinfo=datetime.UTC)
VALUES = {
    "user": {
        "name": "Zoë O'Brien",
        "email": "Zoe@Example.com",
        "email_normalized": "zoe@example.com",
    },
    "product": {"name": 'Drill 18"', "price": "19.99"},
    "order": {"user_id": 7, "product_id": 9, "quantity": 3},
}


def stored_row(model, pk: int) -> dict:
    """The row as the database holds it: every column but the key."""
    alias = database_for_model(model)
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT * FROM {model._meta.db_table} WHERE id = %s", [pk])
        columns = [column[0] for column in cursor.description]
        row = dict(zip(columns, cursor.fetchone(), strict=True))
    row.pop("id")
    return row


@pytest.mark.parametrize("name", sorted(VALUES))
def test_insert_rows_writes_exactly_what_save_writes(monkeypatch, name):
    model = apps.get_model("data_insertion", name)
    monkeypatch.setattr(timezone, "now", lambda: FROZEN)
    saved = model(**VALUES[name])
    saved.save()
    inserted = model(**VALUES[name])
    database = backend(database_for_model(model))
    with database.write_transaction():
        insert_rows([inserted], database.alias)
    assert inserted.pk is not None and inserted.pk != saved.pk
    assert not inserted._state.adding and inserted._state.db == database.alias
    assert stored_row(model, inserted.pk) == stored_row(model, saved.pk)
    columns = {field.column for field in model._meta.concrete_fields if not field.primary_key}
    assert set(stored_row(model, inserted.pk)) == columns  # every field is covered
    # The instance holds what was stored, as after save().
    for field in model._meta.concrete_fields:
        assert (
            getattr(inserted, field.attname) == getattr(saved, field.attname) or field.primary_key
        )


def test_many_rows_in_one_statement_get_their_own_keys_in_order():
    model = apps.get_model("data_insertion", "product")
    products = [model(name=f"P{i}", price="1.00") for i in range(1200)]
    database = backend(database_for_model(model))
    with database.write_transaction():
        insert_rows(products, database.alias)
    keys = [product.pk for product in products]
    assert keys == sorted(keys) and len(set(keys)) == 1200
    found = dict(existing_rows(model, database.alias, ("id", "name"), keys))
    assert all(found[product.pk] == product.name for product in products)
