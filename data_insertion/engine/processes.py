"""Local processes for a spread run (--processes N): the transport engine/scaleout.py uses when
every executor is on this machine.

The processes are forked once, before the run starts any thread, with no database connection
open (a connection must not cross a fork): Django is loaded already, so each is ready in
milliseconds. They take attempts from a pipe, run them (engine/executor.py) and wait on a
barrier so that the slices of a phase start together. Ctrl-C reaches them too (the terminal
signals the whole group): they ignore it, and stop when the coordinator marks the run stopped.
A process that dies is replaced; its slice is redone when its heartbeat stops.

Nothing they share holds a lock that a process could die holding (multiprocessing's queues
and barriers do: a process killed while it waited for work, or at the barrier, left the others
blocked for good). Tasks go through a pipe, each one fixed-size write, which a pipe keeps
whole, so that every read takes exactly one task; the barrier is a file per phase to which each
process appends a byte.
"""

import ctypes
import multiprocessing
import os
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
from contextlib import suppress
from typing import Any

from django.db import DatabaseError, connections

from .executor import execute_attempt

PR_SET_PDEATHSIG = 1
# A task: the attempt's id (0: stop) and whether it waits for the phase's other slices.
_TASK = struct.Struct("<qB")
_STOP = 0
# How long leaving waits for the processes to take their last task and end.
JOIN_TIMEOUT_SECONDS = 10.0
BARRIER_POLL_SECONDS = 0.001


class PhaseBarrier:
    """The slices of a phase start together: each process appends a byte to the phase's file,
    then waits until the file holds a byte per process, or the timeout. A process that dies
    holds nothing up but its own byte; one that comes late finds the others gone, and goes."""

    def __init__(self, directory: str, parties: int) -> None:
        self.directory = directory
        self.parties = parties

    def wait(self, phase: int, timeout: float) -> None:
        path = os.path.join(self.directory, f"phase-{phase}")
        arrival = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(arrival, b".")
        finally:
            os.close(arrival)
        deadline = time.monotonic() + timeout
        while os.stat(path).st_size < self.parties and time.monotonic() < deadline:
            time.sleep(BARRIER_POLL_SECONDS)


class LocalProcesses:
    name = "processes"

    def __init__(self, count: int, slices: int) -> None:
        self.count = count
        # Slices start together when there is one per process; more slices than processes
        # start as processes become free.
        self._released_together = slices == count
        self._context = multiprocessing.get_context("fork")
        self._processes: list[Any] = []

    def __enter__(self) -> "LocalProcesses":
        self._directory = tempfile.mkdtemp(prefix="ds-processes-")
        self._barrier = (
            PhaseBarrier(self._directory, self.count) if self._released_together else None
        )
        self._tasks, self._tasking = os.pipe()
        # A process that ended an attempt writes a byte here, and the coordinator looks at
        # once instead of at its next poll.
        self._ended, self._ending = os.pipe()
        os.set_blocking(self._ended, False)
        os.set_blocking(self._ending, False)
        try:
            for _ in range(self.count):
                self._start_one()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        for _ in self._processes:
            self.submit(_STOP, first=False)
        for process in self._processes:
            process.join(JOIN_TIMEOUT_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        for end in (self._tasks, self._tasking, self._ended, self._ending):
            os.close(end)
        shutil.rmtree(self._directory, ignore_errors=True)

    def submit(self, attempt_id: int, first: bool) -> None:
        os.write(self._tasking, _TASK.pack(attempt_id, first))

    def wait(self, seconds: float) -> None:
        if select.select([self._ended], [], [], seconds)[0]:
            with suppress(BlockingIOError):
                os.read(self._ended, 4096)  # every end so far: the coordinator looks at all

    def maintain(self) -> bool:
        replaced = False
        for number, process in enumerate(self._processes):
            if not process.is_alive():
                process.join()
                self._processes[number] = self._start(number)
                replaced = True
        return replaced

    def _start_one(self) -> None:
        self._processes.append(self._start(len(self._processes)))

    def _start(self, number: int) -> Any:
        # No connection, pooled ones included, may cross the fork: the child would share the
        # parent's sockets (a pooled PostgreSQL connection broke in both).
        connections.close_all()
        for alias in connections:
            close_pool = getattr(connections[alias], "close_pool", None)
            if close_pool is not None:
                close_pool()
        process = self._context.Process(
            target=_serve,
            args=(self._tasks, self._tasking, self._barrier, self._ending, os.getpid()),
            name=f"slice-process-{number + 1}",
            daemon=True,
        )
        process.start()
        return process


def _serve(
    tasks: int, tasking: int, barrier: PhaseBarrier | None, ending: int, parent: int
) -> None:
    """A local executor: run attempts until told to stop, or until the coordinator dies (a
    second Ctrl-C, SIGTERM: the kernel ends this process with it; elsewhere the task pipe's
    end of file)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    os.close(tasking)  # the coordinator's end: with it open here, no end of file would come
    while True:
        task = os.read(tasks, _TASK.size)
        if len(task) < _TASK.size:
            return  # every writer is gone
        attempt_id, first = _TASK.unpack(task)
        if attempt_id == _STOP:
            return
        try:
            execute_attempt(attempt_id, barrier if first else None)
        except DatabaseError as error:  # the default database refused the claim or the end
            print(f"slice attempt {attempt_id}: {error}", file=sys.stderr)
        with suppress(BlockingIOError):  # full: the coordinator has ends to read already
            os.write(ending, b".")


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this process when its parent dies (prctl PR_SET_PDEATHSIG); elsewhere
    the heartbeat's stop flag is all there is."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)
