"""A circuit breaker per database: after repeated failures its records fail fast for a cool-down,
then one probe decides whether it is back.

A small class of our own rather than pybreaker: pybreaker wraps a call and counts the exceptions
it raises, while here the calls are statements and transactions spread over many threads and
modules, failures are only the database's own (a rejected record is no failure), and the engine
counts what the breaker did per record; the state machine itself is thirty lines.
"""

import threading
import time
from collections.abc import Callable

from django.db import OperationalError

# Consecutive failed attempts on one database that open its breaker.
FAILURE_THRESHOLD = 5
# How long an open breaker fails records at once before it lets one probe through.
COOL_DOWN_SECONDS = 1.0


class CircuitOpen(OperationalError):
    """The database's breaker is open: the record fails at once, without touching it."""


class CircuitBreaker:
    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(
        self,
        alias: str,
        threshold: int = FAILURE_THRESHOLD,
        cool_down: float = COOL_DOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.alias = alias
        self.threshold = threshold
        self.cool_down = cool_down
        self.clock = clock
        self.state = self.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.last_error = ""
        self.times_opened = 0
        self._probing = False
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.state = self.CLOSED
            self.failures = 0
            self.times_opened = 0
            self.last_error = ""
            self._probing = False

    def admit(self) -> None:
        """Let a use of the database through, or raise CircuitOpen. Once the cool-down has run
        out, the first caller goes through as the probe; the others fail until it is decided."""
        if self.state == self.CLOSED:
            return
        with self._lock:
            if self.state == self.OPEN and self.clock() - self.opened_at >= self.cool_down:
                self.state = self.HALF_OPEN
                self._probing = False
            if self.state == self.HALF_OPEN and not self._probing:
                self._probing = True
                return
            if self.state == self.CLOSED:
                return
        raise CircuitOpen(
            f"{self.alias}: failing fast, the circuit is open after {self.threshold} failures in "
            f"a row (last: {self.last_error})"
        )

    def release_probe(self) -> None:
        """The probe ended without a verdict on the database (it failed elsewhere): the next
        caller goes through as the probe instead."""
        if self.state == self.HALF_OPEN:
            with self._lock:
                self._probing = False

    def succeeded(self) -> None:
        if self.state == self.CLOSED and not self.failures:
            return  # the common case, without the lock
        with self._lock:
            self.state = self.CLOSED
            self.failures = 0
            self._probing = False

    def failed(self, error: Exception) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = " ".join(str(error).split())[:200]
            if self.state == self.HALF_OPEN or (
                self.state == self.CLOSED and self.failures >= self.threshold
            ):
                self.state = self.OPEN
                self.opened_at = self.clock()
                self.times_opened += 1
                self._probing = False


_breakers: dict[str, CircuitBreaker] = {}
_guard = threading.Lock()


def breaker(alias: str) -> CircuitBreaker:
    """The process's breaker for the database `alias`."""
    found = _breakers.get(alias)
    if found is None:
        with _guard:
            found = _breakers.setdefault(alias, CircuitBreaker(alias))
    return found


def reset_breakers() -> None:
    """Every breaker closed, its counts cleared: a new run starts from a clean slate. The
    breakers stay the same objects: backends keep a reference to theirs."""
    with _guard:
        for found in _breakers.values():
            found.reset()
