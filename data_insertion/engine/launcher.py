"""Runs started from the web execute outside the request: in a background process of their
own (the default), or in a background thread of this process (tests, where the run must see
the test databases). Only the engine starts threads or processes, so both live here."""

import subprocess
from collections.abc import Callable, Sequence

from .workers import start_thread

# What the waiter keeps of a failed process's error output: the end, where the reason is.
STDERR_TAIL_CHARACTERS = 2000


def start_background_process(
    argv: Sequence[str], on_exit: Callable[[int, str], None], name: str
) -> None:
    """Start `argv` in a new session (a Ctrl-C to the server does not stop it); a thread
    waits for it, so it is reaped, and calls `on_exit(returncode, stderr_tail)`."""
    process = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="backslashreplace",
        start_new_session=True,
    )

    def wait() -> None:
        _, stderr = process.communicate()
        on_exit(process.returncode, stderr[-STDERR_TAIL_CHARACTERS:])

    # A daemon: stopping the server must not wait for the run, which goes on by itself.
    start_thread(wait, name=f"{name}-waiter", daemon=True)


def start_background_thread(target: Callable[[], None], name: str) -> None:
    """Run `target` in a thread of this process that closes its connections when done."""
    start_thread(target, name=name)
