import pytest
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.db import router

from data_insertion.models import Order, Product, User
from data_insertion.runs.models import ApiToken, Run, RunSnapshot

ALIASES = ["default", "users_db", "products_db", "orders_db"]


@pytest.mark.parametrize(
    "model, alias",
    [
        (User, "users_db"),
        (Product, "products_db"),
        (Order, "orders_db"),
        (Group, "default"),
        (Run, "default"),
        (RunSnapshot, "default"),
        (ApiToken, "default"),
    ],
)
def test_each_model_reads_and_writes_its_own_database(model, alias):
    assert router.db_for_read(model) == alias
    assert router.db_for_write(model) == alias


@pytest.mark.parametrize(
    "app_label, model_name, home",
    [
        ("data_insertion", "user", "users_db"),
        ("data_insertion", "product", "products_db"),
        ("data_insertion", "order", "orders_db"),
        ("auth", "group", "default"),
        ("contenttypes", "contenttype", "default"),
        ("sessions", "session", "default"),
        ("admin", "logentry", "default"),
        ("runs", "run", "default"),
        ("runs", "runsnapshot", "default"),
        ("runs", "apitoken", "default"),
    ],
)
def test_each_table_migrates_into_its_home_database_only(app_label, model_name, home):
    allowed = [a for a in ALIASES if router.allow_migrate(a, app_label, model_name=model_name)]
    assert allowed == [home]


def test_relations_across_databases_are_refused():
    assert router.allow_relation(User(pk=1), Order(pk=1)) is False
    assert router.allow_relation(User(pk=1), User(pk=2)) is True
    assert router.allow_relation(Session(), Group()) is True


@pytest.mark.django_db(databases="__all__")
def test_each_database_holds_only_its_own_table():
    from django.db import connections

    for alias, table in [
        ("users_db", "data_insertion_user"),
        ("products_db", "data_insertion_product"),
        ("orders_db", "data_insertion_order"),
    ]:
        tables = set(connections[alias].introspection.table_names()) - {"django_migrations"}
        assert tables == {table}
    default_tables = connections["default"].introspection.table_names()
    # Of ours, default holds only the shard maps (which database holds each logical shard).
    assert [t for t in default_tables if t.startswith("data_insertion")] == [
        "data_insertion_shardmap"
    ]
    assert "auth_user" in default_tables
