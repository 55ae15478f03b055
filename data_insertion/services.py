"""The public Python API: insert validated records, each into its own database.

    >>> from data_insertion.services import insert_user
    >>> insert_user(name="Alice", email="alice@example.com")
    InsertionResult(model='user', status='inserted', pk=1, ...)

Values arrive as a user typed them ("19.99", "abc", 2**70). A call returns an InsertionResult
and never raises for bad data: invalid records are "rejected" with reasons, and a database error
that outlasts a bounded retry with backoff is "failed" with the error's text.

Inserting is two steps, so that the engine can commit many records in one transaction:
`prepare_*` applies the rules on a record's own fields (in the calling thread), and
`commit_records` runs the rules that need other rows (email uniqueness, references to the other
databases) and the insert, in one write transaction. `insert_*` does both for one record.
"""

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, OperationalError
from django.db.models import Model

from .models import Order, Product, User
from .persistence import existing_rows, existing_values, insert_rows
from .results import InsertionResult, Status
from .topology import backend, database_for_model, is_transient
from .topology.breakers import CircuitOpen

DUPLICATE_EMAIL = "A user with this email already exists."
UNKNOWN_USER = "No user with this id exists in the users database."
UNKNOWN_PRODUCT = "No product with this id exists in the products database."

# Transient errors (a lock held by another process, a deadlock, a serialization failure) are
# retried this many times in all, sleeping about 50 ms, 100 ms, 200 ms, ... in between.
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 1.0


@dataclass(slots=True)
class PreparedRecord:
    """A record with its own fields checked; `errors` is empty when they follow every rule."""

    instance: Model
    errors: dict[str, list[str]]
    started: float
    thread: str

    @property
    def model(self) -> str:
        return self.instance._meta.model_name


def insert_user(*, name: Any, email: Any) -> InsertionResult:
    return commit_records([prepare_user(name=name, email=email)])[0]


def insert_product(*, name: Any, price: Any) -> InsertionResult:
    return commit_records([prepare_product(name=name, price=price)])[0]


def insert_order(*, user_id: Any, product_id: Any, quantity: Any) -> InsertionResult:
    return commit_records(
        [prepare_order(user_id=user_id, product_id=product_id, quantity=quantity)]
    )[0]


def prepare_user(*, name: Any, email: Any) -> PreparedRecord:
    started = time.perf_counter()
    user = User(name=_as_text(name), email=_as_text(email))
    # full_clean() also runs User.clean(), which sets email_normalized.
    return PreparedRecord(user, field_errors(user), started, threading.current_thread().name)


def prepare_product(*, name: Any, price: Any) -> PreparedRecord:
    started = time.perf_counter()
    product = Product(name=_as_text(name), price=_as_price(price))
    return PreparedRecord(product, field_errors(product), started, threading.current_thread().name)


def prepare_order(*, user_id: Any, product_id: Any, quantity: Any) -> PreparedRecord:
    started = time.perf_counter()
    order = Order(
        user_id=_as_integer_input(user_id),
        product_id=_as_integer_input(product_id),
        quantity=_as_integer_input(quantity),
    )
    return PreparedRecord(order, field_errors(order), started, threading.current_thread().name)


def commit_records(records: Sequence[PreparedRecord]) -> list[InsertionResult]:
    """Check and insert records of one model in one write transaction; a verdict for each.

    A record that breaks a rule is rejected without touching the others; if the batch insert
    fails, each record is retried in its own savepoint so one bad row never fails its batch.
    """
    verdicts: dict[int, tuple[Status, dict[str, list[str]]]] = {
        i: (Status.REJECTED, record.errors) for i, record in enumerate(records) if record.errors
    }
    valid = [i for i in range(len(records)) if i not in verdicts]
    attempts = 1
    failed_fast = False
    if valid:
        first = records[valid[0]]
        database = backend(database_for_model(first.instance))
        check = _CHECKS.get(first.model)
        lock_keys = _lock_keys([records[i].instance for i in valid])
        for attempts in range(1, MAX_ATTEMPTS + 1):
            outcome: dict[int, tuple[Status, dict[str, list[str]]]] = {}
            for i in valid:  # an attempt rolled back leaves keys no row holds any more
                _unsaved(records[i].instance)
            try:
                with database.write_transaction(lock_keys):
                    if check is not None:
                        for i, errors in check([records[i] for i in valid]).items():
                            outcome[valid[i]] = (Status.REJECTED, errors)
                    to_insert = [i for i in valid if i not in outcome]
                    for i, error in _insert([records[i].instance for i in to_insert], database):
                        outcome[to_insert[i]] = (Status.FAILED, {"database": [_error_text(error)]})
            except OperationalError as error:
                if attempts < MAX_ATTEMPTS and is_transient(error):
                    _sleep_before_retry(attempts)
                    continue
                failed_fast = isinstance(error, CircuitOpen)
                outcome = {i: (Status.FAILED, {"database": [_error_text(error)]}) for i in valid}
            except DatabaseError as error:
                outcome = {i: (Status.FAILED, {"database": [_error_text(error)]}) for i in valid}
            verdicts.update(outcome)
            break
    finished = time.perf_counter()
    results = []
    for i, record in enumerate(records):
        status, errors = verdicts.get(i, (Status.INSERTED, {}))
        results.append(
            InsertionResult(
                model=record.model,
                status=status,
                pk=record.instance.pk if status is Status.INSERTED else None,
                errors=errors,
                thread=record.thread,
                latency=finished - record.started,
                attempts=1 if record.errors else attempts,
                instance=record.instance,
                failed_fast=failed_fast and status is Status.FAILED,
            )
        )
    return results


def other_row_errors(instance: Model) -> dict[str, list[str]]:
    """The rules that need other rows, for one record being added or changed (the admin's
    form); the same checks an insert runs."""
    check = _CHECKS.get(instance._meta.model_name)
    if check is None:
        return {}
    return check([PreparedRecord(instance, {}, 0.0, "")]).get(0, {})


def save_checked(instance: Model) -> dict[str, list[str]]:
    """Save a new or changed record after its other-row rules, in one write transaction, as
    commit_records does for inserts (a new record takes the very same insert path); return
    the errors instead when a rule fails."""
    database = backend(database_for_model(instance))
    with database.write_transaction(_lock_keys([instance])):
        errors = other_row_errors(instance)
        if not errors:
            if instance._state.adding:
                insert_rows([instance], database.alias)
            else:
                instance.save(using=database.alias)
    return errors


def _unsaved(instance: Model) -> None:
    instance.pk = None
    instance._state.adding = True


def _lock_keys(instances: list[Model]) -> list[str]:
    """The keys a write must hold so that no other writer can insert the same one meanwhile:
    a user's normalized email."""
    if not isinstance(instances[0], User):
        return []
    return sorted({instance.email_normalized for instance in instances})


def _check_unique_emails(records: list[PreparedRecord]) -> dict[int, dict[str, list[str]]]:
    """Emails another user already has, and repeats within the batch (the first one wins).
    A user being changed does not collide with its own row."""
    keys = [record.instance.email_normalized for record in records]
    owners: dict[str, set[int]] = {}
    for key, pk in existing_rows(User, database_for_model(User), ("email_normalized", "id"), keys):
        owners.setdefault(key, set()).add(pk)
    duplicates = {}
    seen = set()
    for i, (record, key) in enumerate(zip(records, keys, strict=True)):
        holders = owners.get(key)
        own = None if record.instance._state.adding else record.instance.pk
        if key in seen or (holders and holders != {own}):
            duplicates[i] = {"email": [DUPLICATE_EMAIL]}
        seen.add(key)
    return duplicates


def _check_references(records: list[PreparedRecord]) -> dict[int, dict[str, list[str]]]:
    # Users and products are never deleted while orders are inserted, so a row seen here is
    # still there when the order commits.
    users = existing_values(
        User, database_for_model(User), "id", [r.instance.user_id for r in records]
    )
    products = existing_values(
        Product, database_for_model(Product), "id", [r.instance.product_id for r in records]
    )
    problems = {}
    for i, record in enumerate(records):
        errors = {}
        if record.instance.user_id not in users:
            errors["user_id"] = [UNKNOWN_USER]
        if record.instance.product_id not in products:
            errors["product_id"] = [UNKNOWN_PRODUCT]
        if errors:
            problems[i] = errors
    return problems


# The rules that need other rows, by model.
_CHECKS: dict[str, Callable[[list[PreparedRecord]], dict[int, dict[str, list[str]]]]] = {
    "user": _check_unique_emails,
    "order": _check_references,
}


def _insert(instances: list[Model], database) -> list[tuple[int, DatabaseError]]:
    """Insert all; return (position, error) for rows that could not be written."""
    if not instances:
        return []
    if len(instances) == 1:
        insert_rows(instances, database.alias)
        return []
    try:
        with database.savepoint():
            insert_rows(instances, database.alias)
        return []
    except OperationalError:
        raise  # transient: the whole batch is retried
    except DatabaseError:
        pass
    failures = []
    for position, instance in enumerate(instances):
        try:
            with database.savepoint():
                insert_rows([instance], database.alias)
        except OperationalError:
            raise
        except DatabaseError as error:
            instance.pk = None
            failures.append((position, error))
    return failures


def _sleep_before_retry(attempt: int) -> None:
    delay = min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * 2 ** (attempt - 1))
    time.sleep(delay * random.uniform(0.5, 1.5))  # jitter keeps retrying threads apart


def _error_text(error: Exception) -> str:
    return str(error) or type(error).__name__


def field_errors(instance: Model) -> dict[str, list[str]]:
    try:
        instance.full_clean(
            exclude=derived_fields(type(instance)),
            validate_unique=False,  # uniqueness needs other rows: checked in the transaction
            validate_constraints=False,
        )
    except ValidationError as error:
        return error.message_dict
    return {}


DERIVED_FIELDS: dict[type[Model], list[str]] = {}


def derived_fields(model: type[Model]) -> list[str]:
    """Fields the model computes itself (like ModelForm, validation leaves them out)."""
    if model not in DERIVED_FIELDS:
        DERIVED_FIELDS[model] = [f.name for f in model._meta.fields if not f.editable]
    return DERIVED_FIELDS[model]


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
    if (
        isinstance(value, bool)
        or (isinstance(value, float) and not value.is_integer())
        or (isinstance(value, Decimal) and not (value.is_finite() and value == value.to_integral()))
    ):
        return str(value)  # the field rejects "True", "1.5" and "Infinity" as not an integer
    return _as_text(value) if isinstance(value, str) else value
