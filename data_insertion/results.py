"""The vocabulary every layer shares: a record's status and its verdict.

Nothing here touches a database, so the summary, the console and the PDF report can import it
without the persistence stack (a saved run renders on a machine with no database at all).
"""

import re
import threading
import time
from enum import StrEnum
from typing import Any, NamedTuple

MODELS = ("user", "product", "order")
MODEL_TITLES = {"user": "Users", "product": "Products", "order": "Orders"}
# The fields the console, the details file and the report show for each model's records.
DISPLAY_FIELDS = {
    "user": ("name", "email"),
    "product": ("name", "price"),
    "order": ("user_id", "product_id", "quantity"),
}
NO_NAME = "(no name)"
# Unicode's control characters (category Cc): C0, DEL and C1.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")


class Status(StrEnum):
    """A record's verdict. A StrEnum: it is its own text in JSON, and equal to it when read back."""

    INSERTED = "inserted"
    REJECTED = "rejected"
    FAILED = "failed"


class InsertionResult(NamedTuple):
    """One record's verdict. Immutable; a named tuple because the engine makes one per record
    and a frozen dataclass took twice as long to build."""

    model: str
    status: Status
    pk: int | None
    errors: dict[str, list[str]]
    thread: str
    latency: float
    attempts: int = 1
    # The record as validated (and, if inserted, saved); None when preparing it failed.
    instance: Any = None
    # Failed at once because its database's circuit breaker was open.
    failed_fast: bool = False
    # Inserted by an earlier attempt of its slice, found by its identity (identity.py).
    found_committed: bool = False

    @property
    def values(self) -> dict[str, str]:
        """The record's fields as text, as the console and report show them (made on demand:
        most results are only counted)."""
        return {} if self.instance is None else display_values(self.model, self.instance)

    @property
    def label(self) -> str:
        """How the console names the record: "Alice", "Laptop", "user_id: 3"."""
        return record_label(self.model, self.values)

    @property
    def reasons(self) -> str:
        """All errors on one line: "email: Enter a valid email address."."""
        return reasons_text(self.errors)


def display_values(model: str, instance: Any) -> dict[str, str]:
    return {
        name: "" if getattr(instance, name) is None else str(getattr(instance, name))
        for name in DISPLAY_FIELDS[model]
    }


def record_label(model: str, values: dict[str, str]) -> str:
    if model == "order":
        return f"user_id: {values.get('user_id', '')}"
    return values.get("name") or NO_NAME


def reasons_text(errors: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items())


def unexpected_failure(
    model: str, error: Exception, started: float, thread: str | None = None
) -> InsertionResult:
    """The verdict for a record whose insert raised something no service anticipated; `thread`
    is the worker that submitted it (the current thread unless a writer commits for it)."""
    return InsertionResult(
        model=model,
        status=Status.FAILED,
        pk=None,
        errors={"error": [f"{type(error).__name__}: {error}"]},
        thread=thread or threading.current_thread().name,
        latency=time.perf_counter() - started,
    )


def visible(text: str) -> str:
    """Control characters (a rejected name's NUL or BEL) written as their code point, [U+0000],
    so that showing a value never beeps, moves the cursor or breaks a line."""
    return CONTROL_CHARACTERS.sub(lambda found: f"[U+{ord(found.group()):04X}]", text)
