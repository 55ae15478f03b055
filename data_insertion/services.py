"""The public Python API: insert one validated record into its own database.

    >>> from data_insertion.services import insert_user
    >>> insert_user(name="Alice", email="alice@example.com")
    InsertionResult(model='user', status='inserted', pk=1, ...)

Values arrive as a user typed them ("19.99", "abc", 2**70). Each call returns an
InsertionResult and never raises for bad data: invalid records are "rejected" with reasons, and a
database error that outlasts a bounded retry with backoff is "failed" with the error's text.
"""

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, OperationalError
from django.db.models import Model

from distributed_system.routers import database_for_model

from .models import Order, Product, User, normalize_email
from .statements import insert_row, row_exists
from .transactions import write_transaction

INSERTED = "inserted"
REJECTED = "rejected"
FAILED = "failed"

DUPLICATE_EMAIL = "A user with this email already exists."
UNKNOWN_USER = "No user with this id exists in the users database."
UNKNOWN_PRODUCT = "No product with this id exists in the products database."

USERS_DB = database_for_model(User)
PRODUCTS_DB = database_for_model(Product)

# Transient errors (a lock held by another process, a deadlock, a serialization failure) are
# retried this many times in all, sleeping about 50 ms, 100 ms, 200 ms, ... in between.
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class InsertionResult:
    model: str
    status: str
    pk: int | None
    errors: dict[str, list[str]]
    thread: str
    latency: float
    values: dict[str, str] = field(default_factory=dict)
    attempts: int = 1

    @property
    def label(self) -> str:
        """How the console names the record: "Alice", "Laptop", "user_id: 3"."""
        if self.model == "order":
            return f"user_id: {self.values.get('user_id', '')}"
        return self.values.get("name") or "(no name)"

    @property
    def reasons(self) -> str:
        """All errors on one line: "email: Enter a valid email address."."""
        return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in self.errors.items())


def insert_user(*, name: Any, email: Any) -> InsertionResult:
    started = time.perf_counter()
    user = User(name=_as_text(name), email=_as_text(email))
    errors = _field_errors(user)
    if errors:
        return _rejected("user", errors, started, user)
    user.email_normalized = normalize_email(user.email)
    alias = USERS_DB

    def check_unique() -> dict[str, list[str]]:
        taken = row_exists(User, alias, "email_normalized", user.email_normalized)
        return {"email": [DUPLICATE_EMAIL]} if taken else {}

    return _commit(user, check_unique, started, lock_key=user.email_normalized)


def insert_product(*, name: Any, price: Any) -> InsertionResult:
    started = time.perf_counter()
    product = Product(name=_as_text(name), price=_as_price(price))
    errors = _field_errors(product)
    if errors:
        return _rejected("product", errors, started, product)
    return _commit(product, None, started)


def insert_order(*, user_id: Any, product_id: Any, quantity: Any) -> InsertionResult:
    started = time.perf_counter()
    order = Order(
        user_id=_as_integer_input(user_id),
        product_id=_as_integer_input(product_id),
        quantity=_as_integer_input(quantity),
    )
    errors = _field_errors(order)
    if errors:
        return _rejected("order", errors, started, order)

    def check_references() -> dict[str, list[str]]:
        # Users and products are never deleted while orders are inserted, so a row seen here
        # is still there when the order commits.
        problems = {}
        if not row_exists(User, USERS_DB, "id", order.user_id):
            problems["user_id"] = [UNKNOWN_USER]
        if not row_exists(Product, PRODUCTS_DB, "id", order.product_id):
            problems["product_id"] = [UNKNOWN_PRODUCT]
        return problems

    return _commit(order, check_references, started)


def _commit(
    instance: Model,
    check: Callable[[], dict[str, list[str]]] | None,
    started: float,
    lock_key: str | None = None,
) -> InsertionResult:
    """Run `check` and the insert in one write transaction, retrying transient errors."""
    model = instance._meta.model_name
    alias = database_for_model(instance)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with write_transaction(alias, lock_key):
                errors = check() if check else {}
                if not errors:
                    insert_row(instance, alias)
        except OperationalError as error:
            if attempt == MAX_ATTEMPTS:
                return _failed(model, error, started, instance, attempt)
            _sleep_before_retry(attempt)
            continue
        except DatabaseError as error:
            return _failed(model, error, started, instance, attempt)
        if errors:
            return _rejected(model, errors, started, instance, attempt)
        return InsertionResult(
            model=model,
            status=INSERTED,
            pk=instance.pk,
            errors={},
            thread=threading.current_thread().name,
            latency=time.perf_counter() - started,
            values=_display_values(instance),
            attempts=attempt,
        )
    raise AssertionError("unreachable: the loop returns on its last attempt")


def _sleep_before_retry(attempt: int) -> None:
    delay = min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * 2 ** (attempt - 1))
    time.sleep(delay * random.uniform(0.5, 1.5))  # jitter keeps retrying threads apart


def _field_errors(instance: Model) -> dict[str, list[str]]:
    try:
        instance.full_clean(
            exclude=_derived_fields(type(instance)),
            validate_unique=False,  # uniqueness needs other rows: checked in the transaction
            validate_constraints=False,
        )
    except ValidationError as error:
        return error.message_dict
    return {}


_DERIVED_FIELDS: dict[type[Model], list[str]] = {}


def _derived_fields(model: type[Model]) -> list[str]:
    """Fields the model computes itself (like ModelForm, validation leaves them out)."""
    if model not in _DERIVED_FIELDS:
        _DERIVED_FIELDS[model] = [f.name for f in model._meta.fields if not f.editable]
    return _DERIVED_FIELDS[model]


def _rejected(
    model: str, errors: dict[str, list[str]], started: float, instance: Model, attempts: int = 1
) -> InsertionResult:
    return InsertionResult(
        model=model,
        status=REJECTED,
        pk=None,
        errors=errors,
        thread=threading.current_thread().name,
        latency=time.perf_counter() - started,
        values=_display_values(instance),
        attempts=attempts,
    )


def _failed(
    model: str, error: Exception, started: float, instance: Model, attempts: int
) -> InsertionResult:
    return InsertionResult(
        model=model,
        status=FAILED,
        pk=None,
        errors={"database": [str(error) or type(error).__name__]},
        thread=threading.current_thread().name,
        latency=time.perf_counter() - started,
        values=_display_values(instance),
        attempts=attempts,
    )


def unexpected_failure(model: str, error: Exception, started: float) -> InsertionResult:
    """The verdict for a record whose insert raised something no service anticipated."""
    return InsertionResult(
        model=model,
        status=FAILED,
        pk=None,
        errors={"error": [f"{type(error).__name__}: {error}"]},
        thread=threading.current_thread().name,
        latency=time.perf_counter() - started,
    )


_DISPLAY_FIELDS = {
    "user": ("name", "email"),
    "product": ("name", "price"),
    "order": ("user_id", "product_id", "quantity"),
}


def _display_values(instance: Model) -> dict[str, str]:
    return {
        name: "" if getattr(instance, name) is None else str(getattr(instance, name))
        for name in _DISPLAY_FIELDS[instance._meta.model_name]
    }


def _as_text(value: Any) -> str:
    """Text as a form would take it: surrounding whitespace trimmed, None as empty."""
    if value is None:
        return ""
    return str(value).strip()


def _as_price(value: Any) -> Any:
    # A float carries binary noise (0.1 + 0.2): take its shortest text form instead.
    if isinstance(value, float):
        return repr(value)
    return _as_text(value) if isinstance(value, str) else value


def _as_integer_input(value: Any) -> Any:
    """Leave conversion to the field, except values int() would silently truncate."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        return str(value)  # the field rejects "True" and "1.5" as not an integer
    return _as_text(value) if isinstance(value, str) else value
