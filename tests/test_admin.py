"""The admin reads and writes each model in its own database, through the router."""

from pathlib import Path

import django.contrib.admin
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from data_insertion.models import Order, Product, User
from data_insertion.services import insert_user
from tests.conftest import all_databases
from tests.processes import shell_json

pytestmark = all_databases


@pytest.fixture(autouse=True)
def static_root(settings, tmp_path):
    """Each test's own empty STATIC_ROOT: no page depends on whether setup has collected one."""
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    settings.STATIC_ROOT.mkdir()


def test_the_admin_lists_and_adds_records_in_their_own_databases(client):
    get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-for-tests")
    client.login(username="admin", password="pw-for-tests")
    insert_user(name="Zoë", email="zoe@example.com")

    listing = client.get("/admin/data_insertion/user/")
    assert listing.status_code == 200
    assert "Zoë" in listing.content.decode()

    added = client.post("/admin/data_insertion/product/add/", {"name": "Lamp", "price": "12.50"})
    assert added.status_code == 302
    assert Product.objects.using("products_db").get().name == "Lamp"
    assert User.objects.using("users_db").count() == 1


def test_an_admin_addition_takes_the_engines_insert_path(client, monkeypatch):
    """The admin and the engine insert through the same code: persistence.insert_rows, called
    by the services in the same write transaction as the same checks."""
    from data_insertion import services

    inserted = []
    real_insert_rows = services.insert_rows

    def recording(instances, alias):
        inserted.append((type(instances[0]).__name__, alias))
        real_insert_rows(instances, alias)

    monkeypatch.setattr(services, "insert_rows", recording)
    get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-for-tests")
    client.login(username="admin", password="pw-for-tests")
    added = client.post(
        "/admin/data_insertion/user/add/", {"name": "Zoë", "email": "z@example.com"}
    )
    assert added.status_code == 302
    assert inserted == [("User", "users_db")]
    stored = User.objects.get()
    assert (stored.email_normalized, stored.created_at is not None) == ("z@example.com", True)


def test_the_admin_refuses_a_product_breaking_a_rule(client):
    get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-for-tests")
    client.login(username="admin", password="pw-for-tests")
    response = client.post("/admin/data_insertion/product/add/", {"name": "Lamp", "price": "-1"})
    assert response.status_code == 200  # the form again, with the error
    assert "greater than or equal to 0" in response.content.decode()
    assert Product.objects.count() == 0


def test_the_admin_applies_the_rules_that_need_other_rows(client):
    get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-for-tests")
    client.login(username="admin", password="pw-for-tests")
    zoe = insert_user(name="Zoë", email="zoe@example.com")

    duplicate = client.post(
        "/admin/data_insertion/user/add/", {"name": "Z", "email": "ZOE@example.com"}
    )
    assert duplicate.status_code == 200
    assert "A user with this email already exists." in duplicate.content.decode()

    orphan = client.post(
        "/admin/data_insertion/order/add/", {"user_id": 999, "product_id": 888, "quantity": 1}
    )
    assert orphan.status_code == 200
    assert "No user with this id exists" in orphan.content.decode()

    renamed = client.post(
        f"/admin/data_insertion/user/{zoe.pk}/change/",
        {"name": "Zoë B", "email": "zoe@example.com"},
    )
    assert renamed.status_code == 302  # keeping one's own email is not a duplicate
    assert list(User.objects.values_list("name", flat=True)) == ["Zoë B"]
    assert Order.objects.count() == 0


def test_with_debug_off_the_admin_is_styled_from_the_collected_static_files(client, settings):
    settings.DEBUG = False
    call_command("collectstatic", interactive=False, verbosity=0)

    stylesheet = client.get("/static/admin/css/base.css")
    assert stylesheet.status_code == 200
    assert stylesheet["Content-Type"].startswith("text/css")
    shipped = Path(django.contrib.admin.__file__).parent / "static/admin/css/base.css"
    assert b"".join(stylesheet.streaming_content) == shipped.read_bytes()
    stylesheet.close()

    login = client.get("/admin/login/")
    assert login.status_code == 200
    assert '<link rel="stylesheet" href="/static/admin/css/base.css">' in login.content.decode()


SHARDED_ADMIN = """
import json
from django.contrib.auth import get_user_model
from django.test import Client
from data_insertion.housekeeping import migrate_databases
from data_insertion.models import User
from data_insertion.topology import shardmap
migrate_databases()
get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-for-tests")
client = Client(SERVER_NAME="localhost")
client.login(username="admin", password="pw-for-tests")
added = [
    client.post("/admin/data_insertion/user/add/", {"name": f"N{n}", "email": f"{n}@x.org"})
    .status_code
    for n in range(12)
]
layout = shardmap.layout("user")
stored = {alias: list(User.objects.using(alias).all()) for alias in layout.aliases}
listing = client.get("/admin/data_insertion/user/").content.decode()
search = client.get("/admin/data_insertion/user/?q=7@x").content.decode()
user = stored["users_db_1"][0]
change_url = f"/admin/data_insertion/user/{user.pk}/change/"
change_page = client.get(change_url).content.decode()
changed = client.post(change_url, {"name": "Renamed"}).status_code
print(json.dumps({
    "added": added,
    "misplaced": [u.pk for alias, users in stored.items() for u in users
                  if layout.alias_of_id(u.pk) != alias],
    "per_database": {alias: len(users) for alias, users in stored.items()},
    "list": listing,
    "search": search,
    "email_shown": user.email in change_page,
    "email_editable": 'name="email"' in change_page,
    "changed": changed,
    "renamed": User.objects.using("users_db_1").get(pk=user.pk).name,
    "total": sum(User.objects.using(alias).count() for alias in layout.aliases),
}))
"""


@pytest.mark.django_db(databases=[])
def test_a_sharded_models_list_gathers_every_database_and_saves_where_the_shard_maps(tmp_path):
    """Users over two databases (a process of their own: settings read USERS_SHARDS at start)."""
    seen = shell_json(tmp_path, SHARDED_ADMIN, USERS_SHARDS="2")
    assert seen["added"] == [302] * 12
    assert seen["misplaced"] == [] and all(seen["per_database"].values())
    assert "12 users across 2 databases" in seen["list"]
    assert all(f"N{number}" in seen["list"] for number in range(12))
    assert "N7" in seen["search"] and "N8" not in seen["search"]
    # A row opens, and saves, in its own database; its email (its placement) is read-only.
    assert seen["email_shown"] and not seen["email_editable"]
    assert (seen["changed"], seen["renamed"], seen["total"]) == (302, "Renamed", 12)
