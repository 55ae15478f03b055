"""Audit the three databases for rows the services would have refused. It only reads.

The databases enforce none of the rules (see models.py), so a row written some other way (raw
SQL, a script, a restore) can break any of them. The audit reads each model from its own
database, in id order, one page at a time, and reports:

- rows breaking a rule on their own fields, found by the validation the services run;
- users whose stored email_normalized is not normalize_email(email);
- emails several users share, grouped by normalize_email(email), not by the stored column;
- orders whose user or product does not exist;
- for sharded models, a row stored in a database its id's logical shard does not map to (or a
  user whose id's logical shard is not its email's), and an order whose logical shard is not
  its user's.

Memory stays bounded on millions of rows: besides one page of rows and the first `limit`
findings of each kind, it keeps arrays of 8-byte integers: each user's id and a hash of its
normalized email, and each product's id (24 MB for a million of each).
"""

import contextlib
import time
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.db import DatabaseError, connections
from django.db.models import DecimalField, Field, Model, TextField
from django.db.models.functions import Cast

from .models import Order, Product, User, normalize_email
from .persistence import LOOKUP_CHUNK, existing_ids, ids_by_alias
from .results import reasons_text
from .services import UNKNOWN_PRODUCT, UNKNOWN_USER
from .topology import shardmap
from .topology.shards import logical_shard_of_email, logical_shard_of_id
from .validation import field_errors

PAGE_SIZE = 2000
# Looking for repeated email hashes holds at most about this many in a set at a time.
HASHES_PER_SET = 250_000
# A duplicate email's line lists this many user ids, then how many more share it.
IDS_SHOWN_PER_EMAIL = 10

# Each kind of finding, with how the summary counts it.
KINDS = {
    "invalid_user": "users breaking a field rule",
    "invalid_product": "products breaking a field rule",
    "invalid_order": "orders breaking a field rule",
    "wrong_email_normalized": "users whose email_normalized is wrong",
    "duplicate_email": "emails shared by several users",
    "missing_user": "orders whose user does not exist",
    "missing_product": "orders whose product does not exist",
    "misplaced_row": "rows stored where their logical shard does not map",
    "order_apart_from_user": "orders not in their user's logical shard",
}
# Shown only when a model is sharded: a model in one database cannot have them.
SHARD_KINDS = ("misplaced_row", "order_apart_from_user")


class AuditError(Exception):
    """The databases could not be audited (not migrated, unreachable): one line saying why."""


@dataclass(frozen=True, slots=True)
class AuditResult:
    rows_checked: dict[str, int]  # database alias -> rows read
    counts: dict[str, int]  # kind -> findings of that kind, every one counted
    shown: dict[str, tuple[str, ...]]  # kind -> the first `limit` findings, one line each
    seconds: float
    sharded: bool = False

    @property
    def problems(self) -> int:
        return sum(self.counts.values())


class _Findings:
    """Counts every finding; keeps only the first `limit` lines of each kind."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts = dict.fromkeys(KINDS, 0)
        self.shown: dict[str, list[str]] = {kind: [] for kind in KINDS}

    def add(self, kind: str, line: str) -> None:
        self.counts[kind] += 1
        if len(self.shown[kind]) < self.limit:
            self.shown[kind].append(_one_line(line))


def audit_databases(*, limit: int = 100, page_size: int = PAGE_SIZE) -> AuditResult:
    """Read every user, product and order from its database and report each broken rule."""
    started = time.perf_counter()
    findings = _Findings(limit)
    rows_checked: dict[str, int] = {}
    try:
        _require_tables()
        user_ids, email_hashes = _audit_users(findings, page_size, rows_checked)
        _audit_duplicate_emails(user_ids, email_hashes, findings)
        user_ids = array("q", sorted(user_ids))
        product_ids = array("q", sorted(_audit_products(findings, page_size, rows_checked)))
        _audit_orders(user_ids, product_ids, findings, page_size, rows_checked)
    except DatabaseError as error:
        raise AuditError(f"could not read the databases: {' '.join(str(error).split())}") from None
    return AuditResult(
        rows_checked=rows_checked,
        counts=findings.counts,
        shown={kind: tuple(lines) for kind, lines in findings.shown.items()},
        seconds=time.perf_counter() - started,
        sharded=any(shardmap.layout(model) for model in ("user", "product", "order")),
    )


def report_lines(result: AuditResult) -> list[str]:
    """Each finding shown, then the rows checked and the findings of each kind."""
    lines = []
    for kind, shown in result.shown.items():
        lines.extend(shown)
        if result.counts[kind] > len(shown):
            lines.append(f"... and {result.counts[kind] - len(shown):,} more {KINDS[kind]}")
    if lines:
        lines.append("")
    checked = ", ".join(f"{alias} {rows:,}" for alias, rows in result.rows_checked.items())
    lines.append(f"Rows checked: {checked} ({result.seconds:.2f} s)")
    kinds = {k: label for k, label in KINDS.items() if result.sharded or k not in SHARD_KINDS}
    width = max(len(label) for label in kinds.values())
    lines.append("Findings:")
    lines.extend(f"  {label:<{width}} {result.counts[kind]:>9,}" for kind, label in kinds.items())
    return lines


def _require_tables() -> None:
    """Refuse, in one line, databases that are not migrated, before reading anything."""
    problems = []
    if _exists(connections["default"]):
        # Without a shard map table no model is sharded.
        with contextlib.suppress(DatabaseError):
            shardmap.load_shard_maps(create=False)
    for model, alias in _model_aliases():
        connection = connections[alias]
        if not _exists(connection):
            # Connecting would create an empty file, and the audit never writes.
            problems.append(f"{alias} file {connection.settings_dict['NAME']} does not exist")
            continue
        if model._meta.db_table not in connection.introspection.table_names():
            problems.append(f"{alias} has no table {model._meta.db_table}")
    if problems:
        raise AuditError(
            f"not migrated: {'; '.join(problems)} "
            "(run ./setup.sh, or python manage.py migrate --database <alias>)"
        )


def _exists(connection) -> bool:
    """False for a SQLite file that is not there (connecting would create it)."""
    if connection.vendor != "sqlite" or connection.is_in_memory_db():
        return True
    return Path(connection.settings_dict["NAME"]).exists()


def _model_aliases() -> list[tuple[type[Model], str]]:
    return [
        (model, alias)
        for model in (User, Product, Order)
        for alias in shardmap.model_aliases(model._meta.model_name)
    ]


def _audit_users(
    findings: _Findings, page_size: int, rows_checked: dict[str, int]
) -> tuple[array, array]:
    """Check every user; return their ids and their normalized emails' hashes, in id order
    within each database."""
    user_ids = array("q")
    email_hashes = array("q")
    sharded = shardmap.layout("user") is not None
    for user in _stored_instances(
        User, page_size, rows_checked, findings, derived=("email_normalized",)
    ):
        stored_normalized = user.email_normalized  # read first: full_clean() recomputes it
        _check_fields(user, findings)
        normalized = normalize_email(user.email)
        if sharded and logical_shard_of_email(normalized) != logical_shard_of_id(user.pk):
            findings.add(
                "misplaced_row",
                f"user {user.pk}: its id is in logical shard {logical_shard_of_id(user.pk)}, its "
                f"email's logical shard is {logical_shard_of_email(normalized)}",
            )
        if stored_normalized != normalized:
            findings.add(
                "wrong_email_normalized",
                f"user {user.pk}: email_normalized: stored {stored_normalized!r}, "
                f"normalize_email(email) is {normalized!r}",
            )
        user_ids.append(user.pk)
        email_hashes.append(hash(normalized))
    return user_ids, email_hashes


def _audit_duplicate_emails(user_ids: array, email_hashes: array, findings: _Findings) -> None:
    """Report each email several users share.

    The users pass kept only a hash of each normalized email; the users whose hash repeats are
    read again and grouped by the email itself, so a hash collision is never reported.
    """
    repeated = _repeated_values(email_hashes)
    if not repeated:
        return
    candidates = [user_ids[i] for i, key in enumerate(email_hashes) if key in repeated]
    users_by_email: dict[str, list[int]] = {}
    for alias, ids in ids_by_alias(User, sorted(candidates)).items():
        for start in range(0, len(ids), LOOKUP_CHUNK):
            rows = (
                User._base_manager.using(alias)
                .filter(pk__in=ids[start : start + LOOKUP_CHUNK])
                .order_by("pk")
                .values_list("pk", "email")
            )
            for pk, email in rows:
                users_by_email.setdefault(normalize_email(email), []).append(pk)
    for email, ids in users_by_email.items():
        if len(ids) > 1:
            ids.sort()
            listed = ", ".join(str(pk) for pk in ids[:IDS_SHOWN_PER_EMAIL])
            if len(ids) > IDS_SHOWN_PER_EMAIL:
                listed += f" and {len(ids) - IDS_SHOWN_PER_EMAIL:,} more"
            findings.add("duplicate_email", f"duplicate email {email}: users {listed}")


def _repeated_values(values: array) -> set[int]:
    """The values that occur more than once.

    A set of a million hashes takes 66 MB, eight times their array: the values are taken in
    slices (value % slices), each slice's set holding about HASHES_PER_SET of them (16 MB).
    """
    slices = 1 + len(values) // HASHES_PER_SET
    repeated = set()
    for current in range(slices):
        seen = set()
        for value in values:
            if value % slices == current:
                if value in seen:
                    repeated.add(value)
                else:
                    seen.add(value)
    return repeated


def _audit_products(findings: _Findings, page_size: int, rows_checked: dict[str, int]) -> array:
    """Check every product; return their ids."""
    product_ids = array("q")
    for product in _stored_instances(Product, page_size, rows_checked, findings):
        _check_fields(product, findings)
        product_ids.append(product.pk)
    return product_ids


def _audit_orders(
    user_ids: array,
    product_ids: array,
    findings: _Findings,
    page_size: int,
    rows_checked: dict[str, int],
) -> int:
    """Check every order and what it references; return how many orders were read."""
    users = _References(User, user_ids, "user_id", UNKNOWN_USER, "missing_user", findings)
    products = _References(
        Product, product_ids, "product_id", UNKNOWN_PRODUCT, "missing_product", findings
    )
    orders_checked = 0
    sharded = shardmap.layout("order") is not None
    for order in _stored_instances(Order, page_size, rows_checked, findings):
        _check_fields(order, findings)
        if (
            sharded
            and isinstance(order.user_id, int)
            and logical_shard_of_id(order.pk) != logical_shard_of_id(order.user_id)
        ):
            findings.add(
                "order_apart_from_user",
                f"order {order.pk}: in logical shard {logical_shard_of_id(order.pk)}, its user "
                f"{order.user_id} in {logical_shard_of_id(order.user_id)}",
            )
        users.check(order.pk, order.user_id)
        products.check(order.pk, order.product_id)
        orders_checked += 1
    users.flush()
    products.flush()
    return orders_checked


class _References:
    """Orders' references to one model, looked up in the sorted ids read from its database.

    An id the array lacks is asked of the database before it is reported: a row inserted after
    the audit read that model (by a run going on meanwhile) is not missing.
    """

    def __init__(
        self,
        model: type[Model],
        ids: array,
        field: str,
        message: str,
        kind: str,
        findings: _Findings,
    ) -> None:
        self.model = model
        self.ids = ids
        self.field = field
        self.message = message
        self.kind = kind
        self.findings = findings
        self.unconfirmed: list[tuple[int, int]] = []  # (order id, referenced id)

    def check(self, order_id: int, referenced_id: object) -> None:
        # A value that is not an integer breaks a field rule, reported as such.
        if not isinstance(referenced_id, int):
            return
        position = bisect_left(self.ids, referenced_id)
        if position < len(self.ids) and self.ids[position] == referenced_id:
            return
        self.unconfirmed.append((order_id, referenced_id))
        if len(self.unconfirmed) >= LOOKUP_CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.unconfirmed:
            return
        existing = existing_ids(self.model, [referenced for _, referenced in self.unconfirmed])
        for order_id, referenced_id in self.unconfirmed:
            if referenced_id not in existing:
                self.findings.add(
                    self.kind, f"order {order_id}: {self.field} {referenced_id}: {self.message}"
                )
        self.unconfirmed.clear()


def _stored_instances(
    model: type[Model],
    page_size: int,
    rows_checked: dict[str, int],
    findings: _Findings,
    derived: tuple[str, ...] = (),
) -> Iterator[Model]:
    """Every row of `model` as an instance, read from each of its databases in id order (and
    counted in `rows_checked`); a sharded model's row stored where its id does not map is
    reported as misplaced.

    Only the id, the fields validation reads (the editable ones) and the `derived` ones are
    read. Pages are fetched by id (WHERE id > the last one read): memory stays bounded on every
    backend, and no read transaction stays open for the whole table.
    """
    meta = model._meta
    layout = shardmap.layout(meta.model_name)
    for alias in shardmap.model_aliases(meta.model_name):
        rows_checked[alias] = 0
        for instance in _stored_instances_in(model, alias, page_size, derived):
            rows_checked[alias] += 1
            if layout is not None and layout.alias_of_id(instance.pk) != alias:
                findings.add(
                    "misplaced_row",
                    f"{meta.model_name} {instance.pk}: stored in {alias}, but its logical shard "
                    f"{logical_shard_of_id(instance.pk)} maps to {layout.alias_of_id(instance.pk)}",
                )
            yield instance


def _stored_instances_in(
    model: type[Model], alias: str, page_size: int, derived: tuple[str, ...]
) -> Iterator[Model]:
    meta = model._meta
    fields = [meta.pk] + [
        f for f in meta.concrete_fields if f is not meta.pk and (f.editable or f.name in derived)
    ]
    names = [f.attname for f in fields]
    rows = (
        model._base_manager.using(alias)
        .order_by("pk")
        .values_list(*(_stored_value(f) for f in fields))
    )
    last_id = None
    while True:
        page = list((rows if last_id is None else rows.filter(pk__gt=last_id))[:page_size])
        for row in page:
            yield model.from_db(alias, names, row)
        if len(page) < page_size:
            return
        last_id = page[-1][0]


def _stored_value(field: Field) -> str | Cast:
    # Reading a decimal, the ORM rounds it to the field's places (SQLite stores 1.234 as a
    # float): read its text instead, so that validation sees what is stored.
    if isinstance(field, DecimalField):
        return Cast(field.attname, TextField())
    return field.attname


def _check_fields(instance: Model, findings: _Findings) -> None:
    errors = field_errors(instance)  # the very validation the services run before inserting
    if errors:
        reasons = reasons_text(errors)
        model = instance._meta.model_name
        findings.add(f"invalid_{model}", f"{model} {instance.pk}: {reasons}")


def _one_line(text: str) -> str:
    """Control characters in stored values shown escaped, so a finding stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
