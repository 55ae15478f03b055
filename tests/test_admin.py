"""The admin reads and writes each model in its own database, through the router."""

from django.contrib.auth import get_user_model

from data_insertion.models import Product, User
from data_insertion.services import insert_user
from tests.conftest import all_databases

pytestmark = all_databases


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


def test_the_admin_refuses_a_product_breaking_a_rule(client):
    get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-for-tests")
    client.login(username="admin", password="pw-for-tests")
    response = client.post("/admin/data_insertion/product/add/", {"name": "Lamp", "price": "-1"})
    assert response.status_code == 200  # the form again, with the error
    assert "greater than or equal to 0" in response.content.decode()
    assert Product.objects.count() == 0
