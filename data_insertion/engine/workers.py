"""Threads: the one place that starts them. Workers are released together by a barrier so that
their inserts really overlap; each closes its own connections when it ends."""

import threading
from collections.abc import Callable, Mapping, Sequence

from django.db import connections


class SimulationError(Exception):
    """The run could not be carried out (not a record's fault); the message says why."""


def start_thread(target: Callable[[], None], name: str, daemon: bool = False) -> threading.Thread:
    """A helper thread of the engine (a group-commit writer) that closes its connections; a
    daemon one does not keep the process alive when everything else has ended."""
    thread = threading.Thread(target=_closing_connections(target), name=name, daemon=daemon)
    thread.start()
    return thread


def run_workers(
    targets: Mapping[str, Callable[[], None]], stop: threading.Event | None = None
) -> None:
    """Run each target in a thread of that name, all released together; wait for all.

    A thread the system refuses (a process limit) calls the run off: the threads already
    started leave the barrier without working, `stop` is set, and SimulationError says so.
    """
    barrier = threading.Barrier(len(targets))

    def released(target: Callable[[], None]) -> Callable[[], None]:
        def body() -> None:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                return  # the run was called off before it began
            target()

        return _closing_connections(body)

    threads = [
        threading.Thread(target=released(target), name=name) for name, target in targets.items()
    ]
    refused = None
    try:
        for thread in threads:
            thread.start()
    except RuntimeError as error:
        refused = error
        barrier.abort()
        if stop is not None:
            stop.set()
    started = [thread for thread in threads if thread.ident is not None]
    for thread in started:
        thread.join()
    if refused is not None:
        raise SimulationError(
            f"could not start {len(threads)} threads ({refused}); {len(started)} started. "
            "Try fewer --threads."
        )


def split(indexes: range, parts: int) -> Sequence[range]:
    """`indexes` dealt out to `parts` workers: every `parts`-th, from each worker's number."""
    return [indexes[number::parts] for number in range(parts)]


def _closing_connections(target: Callable[[], None]) -> Callable[[], None]:
    def body() -> None:
        try:
            target()
        finally:
            # Connections are per thread: close this thread's, or their files stay open.
            connections.close_all()

    return body
