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
from typing import Any

from django.db import DatabaseError, OperationalError
from django.db.models import Model

from . import reference_cache
from .identity import record_lock_key
from .models import Order, Product, User
from .persistence import assign_ids, existing_ids, existing_rows, insert_rows, mark_saved
from .results import InsertionResult, Status
from .topology import (
    backend,
    connection_scope,
    database_for,
    database_for_model,
    is_transient,
    shardmap,
)
from .topology.breakers import CircuitOpen
from .validation import as_integer_input, as_price, as_text, field_errors

DUPLICATE_EMAIL = "A user with this email already exists."
UNKNOWN_USER = "No user with this id exists in the users database."
UNKNOWN_PRODUCT = "No product with this id exists in the products database."

# Transient errors (a lock held by another process, a deadlock, a serialization failure) are
# retried this many times in all, sleeping about 50 ms, 100 ms, 200 ms, ... in between.
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 1.0
# A write whose logical shard is in a rebalance's cut-over looks at the map again this often.
CUT_OVER_POLL_SECONDS = 0.01


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
    user = User(name=as_text(name), email=as_text(email))
    # full_clean() also runs User.clean(), which sets email_normalized.
    return PreparedRecord(user, field_errors(user), started, threading.current_thread().name)


def prepare_product(*, name: Any, price: Any) -> PreparedRecord:
    started = time.perf_counter()
    product = Product(name=as_text(name), price=as_price(price))
    return PreparedRecord(product, field_errors(product), started, threading.current_thread().name)


def prepare_order(*, user_id: Any, product_id: Any, quantity: Any) -> PreparedRecord:
    started = time.perf_counter()
    order = Order(
        user_id=as_integer_input(user_id),
        product_id=as_integer_input(product_id),
        quantity=as_integer_input(quantity),
    )
    return PreparedRecord(order, field_errors(order), started, threading.current_thread().name)


def commit_records(records: Sequence[PreparedRecord]) -> list[InsertionResult]:
    """Check and insert records of one model in one write transaction; a verdict for each.

    A record that breaks a rule is rejected without touching the others; if the batch insert
    fails, each record is retried in its own savepoint so one bad row never fails its batch.
    A sharded model's records go in one transaction per database their logical shards map to.
    """
    verdicts: dict[int, tuple[Status, dict[str, list[str]]]] = {
        i: (Status.REJECTED, record.errors) for i, record in enumerate(records) if record.errors
    }
    valid = [i for i in range(len(records)) if i not in verdicts]
    attempts = 1
    failed_fast: set[int] = set()
    if valid:
        model = records[valid[0]].model
        if shardmap.layout(model) is None:
            outcome, attempts, failed_fast = _commit_to(database_for(model), records, valid)
        else:
            outcome, attempts, failed_fast = _commit_sharded(model, records, valid)
        verdicts.update(outcome)
    finished = time.perf_counter()
    results = []
    inserted, failed = Status.INSERTED, Status.FAILED  # an enum lookup costs 55 ns
    for i, record in enumerate(records):
        status, errors = verdicts.get(i) or (inserted, {})
        results.append(
            InsertionResult(
                model=record.model,
                status=status,
                pk=record.instance.pk if status is inserted else None,
                errors=errors,
                thread=record.thread,
                latency=finished - record.started,
                attempts=1 if record.errors else attempts,
                instance=record.instance,
                failed_fast=status is failed and i in failed_fast,
                found_committed=errors is ALREADY_COMMITTED,
            )
        )
    return results


Verdicts = dict[int, tuple[Status, dict[str, list[str]]]]
# The verdict of a record an earlier attempt of its slice committed (identity.py).
ALREADY_COMMITTED: dict[str, list[str]] = {}
NONE_FAILED_FAST: frozenset[int] = frozenset()


def _commit_to(
    alias: str,
    records: Sequence[PreparedRecord],
    positions: list[int],
    layout: shardmap.ShardLayout | None = None,
) -> tuple[Verdicts, int, set[int]]:
    """Check and insert the records at `positions` in one write transaction on `alias`,
    retrying transient errors; their verdicts (inserted ones left out), the attempts made and
    the positions failed fast by the database's open circuit breaker.
    With a shard `layout`, the transaction holds the records' logical shards' locks, confirms
    the map is still that version (else ShardMapChanged) and gives the rows their ids."""
    database = backend(alias)
    instances = [records[i].instance for i in positions]
    model = records[positions[0]].model
    check = _CHECKS.get(model)
    check_elsewhere = _CHECKS_ELSEWHERE.get(model)
    lock_keys = _lock_keys(instances)
    keyed = instances[0].record_key is not None
    if keyed:
        lock_keys = sorted({*lock_keys, *(record_lock_key(i.record_key) for i in instances)})
    shards: list[int] = []
    if layout is not None:
        shards = [shardmap.logical_shard_of(instance) for instance in instances]
        shard_keys = {shardmap.shard_lock_key(layout.model, shard) for shard in shards}
        lock_keys = sorted({*lock_keys, *shard_keys})
    attempts = 1
    for attempts in range(1, MAX_ATTEMPTS + 1):
        outcome: Verdicts = {}
        if attempts > 1:  # the attempt rolled back left keys that no row holds any more
            for instance in instances:
                _unsaved(instance)
        try:
            if check_elsewhere is not None:
                # Its reads count against the other databases' connection caps, as they did
                # inside the write transaction (a connection scope hands them back).
                with connection_scope():
                    checked = check_elsewhere([records[i] for i in positions], alias)
                for i, errors in checked.items():
                    outcome[positions[i]] = (Status.REJECTED, errors)
            with database.write_transaction(lock_keys):
                if layout is not None:
                    shardmap.confirm(layout)
                if keyed:
                    outcome.update(_found_committed(records, positions, alias))
                pending = [i for i in positions if i not in outcome]
                if check is not None and pending:
                    for n, errors in check([records[i] for i in pending], alias).items():
                        outcome[pending[n]] = (Status.REJECTED, errors)
                to_insert = [n for n, i in enumerate(positions) if i not in outcome]
                if layout is not None and to_insert:
                    assign_ids(
                        [instances[n] for n in to_insert], [shards[n] for n in to_insert], alias
                    )
                for n, error in _insert([instances[n] for n in to_insert], database):
                    outcome[positions[to_insert[n]]] = (
                        Status.FAILED,
                        {"database": [_error_text(error)]},
                    )
        except shardmap.ShardMapChanged:
            for instance in instances:
                _unsaved(instance)
            raise
        except OperationalError as error:
            if attempts < MAX_ATTEMPTS and is_transient(error):
                _sleep_before_retry(attempts)
                continue
            outcome = {i: (Status.FAILED, {"database": [_error_text(error)]}) for i in positions}
            fast = set(positions) if isinstance(error, CircuitOpen) else NONE_FAILED_FAST
            return outcome, attempts, fast
        except DatabaseError as error:
            outcome = {i: (Status.FAILED, {"database": [_error_text(error)]}) for i in positions}
        return outcome, attempts, NONE_FAILED_FAST
    raise AssertionError("unreachable: the last attempt returns")


def _commit_sharded(
    model: str, records: Sequence[PreparedRecord], positions: list[int]
) -> tuple[Verdicts, int, set[int]]:
    """Commit records of a sharded model, each group in the database its logical shards map
    to. Records whose logical shard is in a rebalance's cut-over wait for the switch (up to
    shardmap.CUT_OVER_WAIT_SECONDS); a group whose map changed under it is routed again."""
    verdicts: Verdicts = {}
    failed_fast: set[int] = set()
    attempts = 1
    pending = positions
    deadline = time.monotonic() + shardmap.CUT_OVER_WAIT_SECONDS
    layout = shardmap.layout(model)
    while pending:
        groups: dict[str, list[int]] = {}
        waiting = []
        for i in pending:
            shard = shardmap.logical_shard_of(records[i].instance)
            if shard in layout.frozen:
                waiting.append(i)
            else:
                groups.setdefault(layout.alias_of_shard(shard), []).append(i)
        for alias, group in groups.items():
            try:
                outcome, tries, fast = _commit_to(alias, records, group, layout)
            except shardmap.ShardMapChanged:
                waiting.extend(group)
                continue
            attempts = max(attempts, tries)
            verdicts.update(outcome)
            failed_fast |= fast
        pending = waiting
        if pending:
            if time.monotonic() > deadline:
                message = (
                    f"its logical shard stayed in a rebalance's cut-over for more than "
                    f"{shardmap.CUT_OVER_WAIT_SECONDS:.0f} s"
                )
                verdicts.update({i: (Status.FAILED, {"database": [message]}) for i in pending})
                break
            time.sleep(CUT_OVER_POLL_SECONDS)
            layout = shardmap.reload(model)
            attempts += 1
    return verdicts, attempts, failed_fast


def other_row_errors(instance: Model) -> dict[str, list[str]]:
    """The rules that need other rows, for one record being added or changed (the admin's
    form); the same checks an insert runs."""
    return _other_row_errors(instance, _home(instance, shardmap.layout(instance._meta.model_name)))


def _other_row_errors(instance: Model, alias: str) -> dict[str, list[str]]:
    model = instance._meta.model_name
    check = _CHECKS.get(model) or _CHECKS_ELSEWHERE.get(model)
    if check is None:
        return {}
    return check([PreparedRecord(instance, {}, 0.0, "")], alias).get(0, {})


def _home(instance: Model, layout: shardmap.ShardLayout | None) -> str:
    """The database a record is written to: its model's, or its logical shard's."""
    if layout is None:
        return database_for_model(instance)
    return layout.alias_of_shard(shardmap.logical_shard_of(instance))


def save_checked(instance: Model) -> dict[str, list[str]]:
    """Save a new or changed record after its other-row rules, in one write transaction, as
    commit_records does for inserts (a new record takes the very same insert path); return
    the errors instead when a rule fails."""
    model = instance._meta.model_name
    layout = shardmap.layout(model)
    while True:
        database = backend(_home(instance, layout))
        lock_keys = _lock_keys([instance])
        if layout is not None:
            shard = shardmap.logical_shard_of(instance)
            lock_keys = sorted({*lock_keys, shardmap.shard_lock_key(model, shard)})
        adding = instance._state.adding
        try:
            with database.write_transaction(lock_keys):
                if layout is not None:
                    shardmap.confirm(layout)
                errors = _other_row_errors(instance, database.alias)
                if not errors:
                    if adding:
                        if layout is not None:
                            assign_ids([instance], [shard], database.alias)
                        insert_rows([instance], database.alias)
                    else:
                        instance.save(using=database.alias)
            return errors
        except shardmap.ShardMapChanged:
            if adding:
                _unsaved(instance)
            time.sleep(CUT_OVER_POLL_SECONDS)
            layout = shardmap.reload(model)


def _found_committed(
    records: Sequence[PreparedRecord], positions: list[int], alias: str
) -> Verdicts:
    """Records of a redone slice that an earlier attempt committed (found by their identity):
    inserted, once, with the row they already have."""
    instances = {records[i].instance.record_key: (i, records[i].instance) for i in positions}
    model = type(records[positions[0]].instance)
    verdicts: Verdicts = {}
    for key, pk in existing_rows(model, alias, ("record_key", "id"), instances):
        i, instance = instances[key]
        mark_saved(instance, pk, alias)
        verdicts[i] = (Status.INSERTED, ALREADY_COMMITTED)
    return verdicts


def _unsaved(instance: Model) -> None:
    instance.pk = None
    instance._state.adding = True


def _lock_keys(instances: list[Model]) -> list[str]:
    """The keys a write must hold so that no other writer can insert the same one meanwhile:
    a user's normalized email."""
    if not isinstance(instances[0], User):
        return []
    return sorted({instance.email_normalized for instance in instances})


def _check_unique_emails(
    records: list[PreparedRecord], alias: str
) -> dict[int, dict[str, list[str]]]:
    """Emails another user already has, and repeats within the batch (the first one wins).
    A user being changed does not collide with its own row. Sharded, every spelling of an
    email has one logical shard, so `alias` (the transaction's database) holds them all."""
    keys = [record.instance.email_normalized for record in records]
    owners: dict[str, set[int]] = {}
    for key, pk in existing_rows(User, alias, ("email_normalized", "id"), keys):
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


def _check_references(records: list[PreparedRecord], alias: str) -> dict[int, dict[str, list[str]]]:
    """An order's user and product must exist: asked of the shared cache first (positive
    answers only), then of their databases.

    The promise is the databases' own: a check that starts after a delete has returned does
    not find the row (the delete invalidates the cache before it returns). A check that
    started before a concurrent delete may still see the row, and its order commit after the
    delete: the check and the insert are in different databases, and no lock spans both.
    """
    found = reference_cache.existing_ids(
        {"user": _ids(records, "user_id"), "product": _ids(records, "product_id")},
        _REFERENCE_LOOKUPS,
    )
    users, products = found["user"], found["product"]
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


def _ids(records: list[PreparedRecord], attribute: str) -> list[int]:
    """The distinct integer ids the records reference (others cannot exist)."""
    values = (getattr(record.instance, attribute) for record in records)
    return list(dict.fromkeys(value for value in values if isinstance(value, int)))


_REFERENCE_LOOKUPS: reference_cache.Lookups = {
    "user": lambda ids: existing_ids(User, ids),
    "product": lambda ids: existing_ids(Product, ids),
}

Check = Callable[[list[PreparedRecord], str], dict[int, dict[str, list[str]]]]
# The rules that need other rows of the record's own database, by model: checked inside the
# write transaction that inserts, which keeps them true until it commits.
_CHECKS: dict[str, Check] = {"user": _check_unique_emails}
# The rules that need rows of other databases (or the shared cache), by model: checked just
# before the write transaction, which could not hold them anyway, so that no round trip to
# another database or to the cache happens while this database's writer lock is held (one
# writer at a time per SQLite file: with the cache's round trips inside it, 20 threads
# committed 724 orders/s instead of 3,361).
_CHECKS_ELSEWHERE: dict[str, Check] = {"order": _check_references}


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
