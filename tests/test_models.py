"""Rules on a record's own fields: full_clean() raises, no database needed."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from data_insertion.models import Order, Product, User


def errors_of(instance) -> dict:
    try:
        instance.full_clean(exclude=["email_normalized"], validate_unique=False)
    except ValidationError as error:
        return error.message_dict
    return {}


@pytest.mark.parametrize("name", ["A", "N" * 100, "Zoë", "李雷", "O'Brien", "a; DROP TABLE x"])
def test_user_names_within_the_rules_are_valid(name):
    assert errors_of(User(name=name, email="a@example.com")) == {}


@pytest.mark.parametrize("name", ["", "N" * 101, "nul\x00byte", "tab\there", "bell\x07", "\x7f"])
def test_user_names_breaking_the_rules_are_invalid(name):
    assert "name" in errors_of(User(name=name, email="a@example.com"))


@pytest.mark.parametrize(
    "email", ["plain", "a@", "@example.com", "a b@example.com", "a@example", "x" * 250 + "@ex.com"]
)
def test_invalid_emails_are_rejected(email):
    assert "email" in errors_of(User(name="A", email=email))


def test_email_at_254_characters_is_valid_and_at_255_is_not():
    domain = "@" + ".".join(["d" * 60] * 3) + ".com"
    local = "l" * (254 - len(domain))
    assert errors_of(User(name="A", email=local + domain)) == {}
    assert "email" in errors_of(User(name="A", email="l" + local + domain))


def test_clean_derives_the_case_folded_email():
    user = User(name="A", email="Mixed.Case@Example.COM")
    user.clean()
    assert user.email_normalized == "mixed.case@example.com"


@pytest.mark.parametrize("price", ["0", "0.00", "19.99", "99999999.99", Decimal("5")])
def test_prices_within_the_rules_are_valid(price):
    assert errors_of(Product(name="P", price=price)) == {}


@pytest.mark.parametrize(
    "price", ["-0.01", "100000000.00", "1.999", "abc", "NaN", "Infinity", "-inf", "", None]
)
def test_prices_breaking_the_rules_are_invalid(price):
    assert "price" in errors_of(Product(name="P", price=price))


@pytest.mark.parametrize("name", ["", "P" * 201, "ctrl\x1b"])
def test_product_names_breaking_the_rules_are_invalid(name):
    assert "name" in errors_of(Product(name=name, price="1"))


def test_product_name_of_200_characters_is_valid():
    assert errors_of(Product(name="P" * 200, price="1")) == {}


@pytest.mark.parametrize("quantity", [1, 1_000_000, "7"])
def test_quantities_within_the_rules_are_valid(quantity):
    assert errors_of(Order(user_id=1, product_id=1, quantity=quantity)) == {}


@pytest.mark.parametrize("quantity", [0, -1, 1_000_001, 2**70, "many", "", None])
def test_quantities_breaking_the_rules_are_invalid(quantity):
    assert "quantity" in errors_of(Order(user_id=1, product_id=1, quantity=quantity))
