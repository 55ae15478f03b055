"""Faults injected into single databases while a run goes on (--fault ALIAS:KIND:DURATION@START).

  ALIAS:lock:DURATION@START   another connection holds the database's write lock
  ALIAS:latency:DURATION      every write transaction on it takes DURATION longer, all run long
  ALIAS:down:DURATION@START   the database cannot be reached

Times are seconds from the run's start ("500ms", "3s", "1.5s", "2m"). A fault thread (the
engine's) applies each timed fault at its start and removes it at its end, and every fault is
removed when the run ends, however it ends. How each vendor is faulted: topology/faults.py.
"""

import math
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connections

from ..topology import MODEL_DATABASES, Backend, backend
from ..topology import faults as vendor_faults
from ..topology.placement import APP_LABEL, DEFAULT_DATABASE, allows_table
from .workers import start_thread

KINDS = ("lock", "latency", "down")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}
MAX_SECONDS = 3600.0


class FaultSpecError(ValueError):
    """A --fault value that cannot be carried out; the message names the problem."""


@dataclass(frozen=True)
class Fault:
    spec: str
    alias: str
    kind: str
    duration: float
    start: float = 0.0

    @property
    def end(self) -> float:
        return math.inf if self.kind == "latency" else self.start + self.duration

    def models(self) -> tuple[str, ...]:
        """The models whose records the fault reaches: the database's own, and, when it is
        down, orders too, whose checks read the users and products databases (a lock or a
        slow write leaves those reads alone)."""
        own = tuple(model for model in MODEL_DATABASES if _holds(self.alias, model))
        read_by_orders = _holds(self.alias, "user") or _holds(self.alias, "product")
        return own + (("order",) if self.kind == "down" and read_by_orders else ())

    def describe(self) -> str:
        if self.kind == "latency":
            return f"{self.alias} latency +{_seconds(self.duration)} per write transaction"
        what = "write lock held by another connection" if self.kind == "lock" else "down"
        return (
            f"{self.alias} {what} for {_seconds(self.duration)} from "
            f"{_seconds(self.start)} ({_seconds(self.start)}-{_seconds(self.end)})"
        )


def parse_duration(text: str) -> float:
    found = _DURATION.match(text.strip())
    if not found:
        raise FaultSpecError(f"{text!r} is not a duration like 500ms, 3s or 1.5m")
    seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if seconds > MAX_SECONDS:
        raise FaultSpecError(f"{text} is longer than an hour")
    return seconds


def parse_fault(text: str) -> Fault:
    """ALIAS:KIND:DURATION[@START] -> Fault, or FaultSpecError naming what is wrong."""
    parts = text.split(":")
    if len(parts) != 3:
        raise FaultSpecError(f"{text!r} is not ALIAS:KIND:DURATION[@START]")
    alias, kind, timing = (part.strip() for part in parts)
    known = model_aliases()
    if alias not in known:
        raise FaultSpecError(f"{text!r}: no database {alias!r} (one of {', '.join(known)})")
    if kind not in KINDS:
        raise FaultSpecError(f"{text!r}: no fault {kind!r} (one of {', '.join(KINDS)})")
    duration_text, at, start_text = timing.partition("@")
    if kind == "latency" and at:
        raise FaultSpecError(f"{text!r}: latency lasts the whole run; it takes no @START")
    duration = parse_duration(duration_text)
    start = parse_duration(start_text) if at else 0.0
    if duration <= 0:
        raise FaultSpecError(f"{text!r}: the duration must be more than 0")
    return Fault(spec=text, alias=alias, kind=kind, duration=duration, start=start)


def model_aliases() -> list[str]:
    """The databases a fault may name: each model's, or each of its shards' (users_db_2)."""
    return [alias for alias in connections if alias != DEFAULT_DATABASE]


def _holds(alias: str, model: str) -> bool:
    """Whether `alias` is `model`'s database or one of its shards."""
    return allows_table(alias, APP_LABEL, model)


def check_supported(faults: Sequence[Fault]) -> None:
    """Refuse, before anything runs, a fault the database's vendor cannot take, and two faults
    of one kind on one database at once (the first to end would undo the other)."""
    for number, fault in enumerate(faults):
        for other in faults[:number]:
            if (fault.alias, fault.kind) == (other.alias, other.kind) and (
                fault.start < other.end and other.start < fault.end
            ):
                raise FaultSpecError(
                    f"{fault.spec} overlaps {other.spec}: one {fault.kind} at a time on "
                    f"{fault.alias}"
                )
    for fault in faults:
        database = backend(fault.alias)
        if not vendor_faults.supports(database, fault.kind):
            raise FaultSpecError(
                f"{fault.spec}: {fault.kind} cannot be injected into {fault.alias} on "
                f"{database.vendor} (see data_insertion/topology/faults.py)"
            )


def acts_in_each_process(fault: Fault) -> bool:
    """Whether the fault acts where the writes are made, so that every process of a spread run
    applies it itself: a slow write, and a SQLite database down (its driver's door, shut in
    each process). A lock held by another connection, and a server that refuses every
    client, act on all processes from one."""
    return fault.kind == "latency" or (
        fault.kind == "down" and backend(fault.alias).vendor == "sqlite"
    )


@dataclass
class FaultRecord:
    """When a fault really held (UTC, to the microsecond, as rows' created_at are), or why
    it could not be injected."""

    applied_at: str | None = None
    removed_at: str | None = None
    error: str | None = None


@contextmanager
def injected(faults: tuple[Fault, ...], run_started: float) -> Iterator[dict[str, FaultRecord]]:
    """The faults applied at their times while the block runs; all removed when it ends.
    Yields, by spec, when each one held, filled in as it happens."""
    records = {fault.spec: FaultRecord() for fault in faults}
    ended = threading.Event()
    threads = []
    try:
        for fault in faults:
            if fault.kind == "latency":
                backend(fault.alias).delay = fault.duration
                records[fault.spec].applied_at = _now()
            else:
                threads.append(
                    start_thread(
                        lambda fault=fault: _carry_out(
                            fault, run_started, ended, records[fault.spec]
                        ),
                        name=f"fault-{fault.alias}-{fault.kind}",
                    )
                )
        yield records
    finally:
        ended.set()
        for thread in threads:
            thread.join()
        for fault in faults:
            if fault.kind == "latency":
                backend(fault.alias).delay = 0.0
                records[fault.spec].removed_at = _now()


# Outages in place, so that a process that must exit at once (a second Ctrl-C) ends them first:
# a PostgreSQL database left refusing connections would refuse every later run.
_outages: set[Backend] = set()
_outages_lock = threading.Lock()


def end_outages() -> None:
    """Make every database this process cut off reachable again, now."""
    for database in list(_outages):
        _end_outage(database)


def _end_outage(database: Backend) -> None:
    with _outages_lock:
        if database not in _outages:
            return  # ended already (the run's end and a second Ctrl-C can meet)
        _outages.discard(database)
    vendor_faults.restore(database)


def _carry_out(
    fault: Fault, run_started: float, ended: threading.Event, record: FaultRecord
) -> None:
    """Wait for the fault's start, hold it until its end or the run's, then remove it."""
    if ended.wait(max(0.0, run_started + fault.start - time.perf_counter())):
        return
    database = backend(fault.alias)
    try:
        with ExitStack() as applied:
            if fault.kind == "lock":
                applied.enter_context(vendor_faults.write_lock_held_elsewhere(database))
            else:
                applied.callback(_end_outage, database)
                with _outages_lock:
                    _outages.add(database)
                vendor_faults.cut_off(database)
            record.applied_at = _now()
            ended.wait(max(0.0, run_started + fault.end - time.perf_counter()))
        record.removed_at = _now()
    except Exception as error:  # the run goes on; the summary says the fault did not happen
        record.error = " ".join(f"{type(error).__name__}: {error}".split())


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:g} s"
