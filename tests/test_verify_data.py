"""verify_data: rows planted past the services are each named; a clean database passes."""

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from data_insertion import audit
from data_insertion.audit import KINDS, audit_databases
from data_insertion.models import NAME_BLANK, Order, Product, User, normalize_email
from data_insertion.services import UNKNOWN_PRODUCT, UNKNOWN_USER
from distributed_system.routers import database_for_model
from tests.conftest import all_databases
from tests.processes import manage


def plant_user(name: str = "Alice", email: str = "alice@example.com", **fields) -> int:
    """A user written past the services (no validation); email_normalized right unless given."""
    fields.setdefault("email_normalized", normalize_email(email))
    return User.objects.bulk_create([User(name=name, email=email, **fields)])[0].pk


def plant_product(name: str = "Laptop", price: Decimal = Decimal("10.00")) -> int:
    return Product.objects.bulk_create([Product(name=name, price=price)])[0].pk


def plant_order(user_id: int, product_id: int, quantity: int = 1) -> int:
    order = Order(user_id=user_id, product_id=product_id, quantity=quantity)
    return Order.objects.bulk_create([order])[0].pk


def plant_product_price(price: str) -> int:
    """A price stored as given: through the ORM a DecimalField would round it to 2 places."""
    table = Product._meta.db_table
    with connections[database_for_model(Product)].cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (name, price, created_at) VALUES (%s, %s, %s)",
            ["Pen", price, timezone.now()],
        )
    return Product.objects.filter(name="Pen").values_list("pk", flat=True).get()


def only(kind: str, count: int = 1) -> dict[str, int]:
    """The audit's counts when only `kind` was found."""
    return {**dict.fromkeys(KINDS, 0), kind: count}


def verify(**options) -> tuple[str, int]:
    """verify_data's output and exit status, as a user sees them."""
    out = io.StringIO()
    try:
        call_command("verify_data", stdout=out, stderr=io.StringIO(), **options)
    except CommandError as error:
        return out.getvalue() + f"CommandError: {error}\n", error.returncode
    return out.getvalue(), 0


@pytest.fixture
def valid_rows() -> tuple[int, int]:
    """One user and one product that follow every rule, for orders to reference."""
    return plant_user(), plant_product()


def blank_name(user_id, product_id):
    pk = plant_user(name="", email="blank@example.com")
    return "invalid_user", f"user {pk}: name: {NAME_BLANK}"


def nul_in_name(user_id, product_id):
    pk = plant_user(name="nul\x00byte", email="nul@example.com")
    return "invalid_user", f"user {pk}: name: Must not contain control characters (found U+0000)."


def name_of_101_characters(user_id, product_id):
    pk = plant_user(name="N" * 101, email="long@example.com")
    return (
        "invalid_user",
        f"user {pk}: name: Ensure this value has at most 100 characters (it has 101).",
    )


def invalid_email(user_id, product_id):
    pk = plant_user(name="Bob", email="bob@")
    return "invalid_user", f"user {pk}: email: Enter a valid email address."


def emails_differing_in_case(user_id, product_id):
    first = plant_user(name="Carol", email="Carol@Example.com")
    second = plant_user(name="Carol B", email="carol@example.COM")
    return "duplicate_email", f"duplicate email carol@example.com: users {first}, {second}"


def wrong_email_normalized(user_id, product_id):
    pk = plant_user(name="Dave", email="Dave@example.com", email_normalized="dave@elsewhere.com")
    return (
        "wrong_email_normalized",
        f"user {pk}: email_normalized: stored 'dave@elsewhere.com', "
        "normalize_email(email) is 'dave@example.com'",
    )


def negative_price(user_id, product_id):
    pk = plant_product(name="Keyboard", price=Decimal("-1.00"))
    return (
        "invalid_product",
        f"product {pk}: price: Ensure this value is greater than or equal to 0.",
    )


def price_with_3_decimals(user_id, product_id):
    pk = plant_product_price("1.234")
    return (
        "invalid_product",
        f"product {pk}: price: Ensure that there are no more than 2 decimal places.",
    )


def price_that_is_not_a_number(user_id, product_id):
    pk = plant_product_price("12\nabc")
    return "invalid_product", f"product {pk}: price: “12\\nabc” value must be a decimal number."


def quantity_0(user_id, product_id):
    pk = plant_order(user_id, product_id, quantity=0)
    return (
        "invalid_order",
        f"order {pk}: quantity: Ensure this value is greater than or equal to 1.",
    )


def quantity_2_000_000(user_id, product_id):
    pk = plant_order(user_id, product_id, quantity=2_000_000)
    return (
        "invalid_order",
        f"order {pk}: quantity: Ensure this value is less than or equal to 1000000.",
    )


def order_for_a_missing_user(user_id, product_id):
    pk = plant_order(999, product_id)
    return "missing_user", f"order {pk}: user_id 999: {UNKNOWN_USER}"


def order_for_a_missing_product(user_id, product_id):
    pk = plant_order(user_id, 999)
    return "missing_product", f"order {pk}: product_id 999: {UNKNOWN_PRODUCT}"


@all_databases
@pytest.mark.parametrize(
    "plant",
    [
        blank_name,
        nul_in_name,
        name_of_101_characters,
        invalid_email,
        emails_differing_in_case,
        wrong_email_normalized,
        negative_price,
        price_with_3_decimals,
        price_that_is_not_a_number,
        quantity_0,
        quantity_2_000_000,
        order_for_a_missing_user,
        order_for_a_missing_product,
    ],
)
def test_each_planted_violation_is_named_on_one_line(valid_rows, plant):
    kind, line = plant(*valid_rows)
    result = audit_databases()
    assert result.counts == only(kind)
    assert result.shown[kind] == (line,)
    out, returncode = verify()
    assert returncode == 1
    assert f"\n{line}\n" in f"\n{out}"
    assert KINDS[kind] in out and "CommandError: 1 problem found (see above)." in out


@all_databases
@pytest.mark.parametrize("hashes_per_set", [audit.HASHES_PER_SET, 2])
def test_duplicates_are_grouped_by_normalize_email_not_by_the_stored_column(
    hashes_per_set, monkeypatch
):
    # With 2 hashes per set, the search for repeated hashes runs in several slices.
    monkeypatch.setattr(audit, "HASHES_PER_SET", hashes_per_set)
    # The second user's stored column hides the duplicate: only normalize_email(email) shows it.
    first = plant_user(email="erin@example.com")
    second = plant_user(email="ERIN@example.com", email_normalized="ERIN@example.com")
    third = plant_user(email="Erin@Example.com")
    plant_user(email="frank@example.com")
    result = audit_databases()
    assert result.shown["duplicate_email"] == (
        f"duplicate email erin@example.com: users {first}, {second}, {third}",
    )
    assert result.counts == {**only("duplicate_email"), "wrong_email_normalized": 1}


@all_databases
def test_a_clean_run_of_insert_data_passes_and_exits_0():
    call_command("insert_data", verbosity=0, stdout=io.StringIO(), stderr=io.StringIO())
    out, returncode = verify()
    assert returncode == 0
    assert out.rstrip().endswith("No problems found in users_db, products_db, orders_db.")
    assert (
        f"Rows checked: users_db {User.objects.count()}, products_db {Product.objects.count()}, "
        f"orders_db {Order.objects.count()}"
    ) in out
    assert audit_databases().problems == 0


@all_databases
def test_every_kind_is_reported_in_one_run_with_its_count(valid_rows):
    plant_user(name="", email="blank@example.com")
    plant_user(name="Bob", email="bob@")
    plant_product(price=Decimal("-5.00"))
    plant_order(999, 998, quantity=0)
    out, returncode = verify()
    assert returncode == 1
    assert "Rows checked: users_db 3, products_db 2, orders_db 1" in out
    counts = {
        label: int(line.split()[-1])
        for line in out.splitlines()
        for label in KINDS.values()
        if line.strip().startswith(label)
    }
    assert counts == {
        "users breaking a field rule": 2,
        "products breaking a field rule": 1,
        "orders breaking a field rule": 1,
        "users whose email_normalized is wrong": 0,
        "emails shared by several users": 0,
        "orders whose user does not exist": 1,
        "orders whose product does not exist": 1,
    }
    assert out.rstrip().endswith("CommandError: 6 problems found (see above).")


@all_databases
def test_limit_caps_the_lines_printed_but_every_finding_is_counted():
    for n in range(5):
        plant_user(name="", email=f"user{n}@example.com")
    out, returncode = verify(limit=2)
    assert returncode == 1
    assert out.count(f": name: {NAME_BLANK}") == 2
    assert "... and 3 more users breaking a field rule" in out
    assert audit_databases(limit=2).counts == only("invalid_user", 5)


@all_databases
@pytest.mark.parametrize("rows", [4, 5])
def test_rows_are_read_page_by_page_to_the_last_one(rows):
    for n in range(rows - 1):
        plant_user(email=f"user{n}@example.com")
    last = plant_user(name="")
    result = audit_databases(page_size=2)
    assert result.rows_checked["users_db"] == rows
    assert result.shown["invalid_user"] == (f"user {last}: name: {NAME_BLANK}",)


@all_databases
def test_an_order_whose_user_arrives_after_the_users_were_read_is_not_reported(
    valid_rows, monkeypatch
):
    # As when insert_data runs beside the audit: the user is committed after the users pass.
    late_user_id = valid_rows[0] + 100
    plant_order(late_user_id, valid_rows[1])
    audit_products = audit._audit_products

    def insert_the_user_then_audit_products(*args, **kwargs):
        plant_user(email="late@example.com", id=late_user_id)
        return audit_products(*args, **kwargs)

    monkeypatch.setattr(audit, "_audit_products", insert_the_user_then_audit_products)
    result = audit_databases()
    assert result.problems == 0
    assert result.rows_checked["users_db"] == 1  # the late user was not read by the users pass


def test_databases_never_created_are_one_line_and_exit_2_without_creating_files(tmp_path):
    result = manage(tmp_path, "verify_data")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "not migrated: users_db file" in lines[0] and "does not exist" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_databases_without_tables_are_one_line_and_exit_2(tmp_path):
    for name in ("users.db", "products.db", "orders.db"):
        (tmp_path / name).touch()  # an empty SQLite database
    result = manage(tmp_path, "verify_data")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "users_db has no table data_insertion_user" in lines[0]
    assert "orders_db has no table data_insertion_order" in lines[0]
    assert "migrate" in lines[0]


def test_a_bad_limit_is_one_line(tmp_path):
    result = manage(tmp_path, "verify_data", "--limit", "-1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "manage.py verify_data: error: argument --limit: -1 is outside 0..10,000,000"
    ]
