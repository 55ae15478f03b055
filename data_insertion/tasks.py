"""A run's slices on Celery workers (--celery): the task a worker runs, and the transport the
coordinator (engine/scaleout.py) sends slices through.

A task carries only an attempt's id: the plan and the references are in the default database,
which the workers share with the run, so a message stays a few bytes whatever the run's size.
"""

import time

from celery import shared_task
from django.conf import settings
from kombu.exceptions import KombuError

from distributed_system.celery import app

from .engine.executor import execute_attempt
from .engine.workers import SimulationError

SLICE_TASK = "data_insertion.run_slice"
# With --celery and no --slices: this many slices per worker process online, so that a slow
# or lost worker's share is small and the others take the rest.
SLICES_PER_WORKER_PROCESS = 2
PING_TIMEOUT_SECONDS = 2.0


@shared_task(name=SLICE_TASK)
def run_slice(attempt_id: int) -> str:
    return execute_attempt(attempt_id)


class CeleryWorkers:
    """The Celery workers listening on the run's queue, as a transport for spread runs."""

    name = "Celery workers"

    def __init__(self) -> None:
        if not settings.CELERY_BROKER_URL:
            raise SimulationError(
                "--celery needs a broker: set DS_CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0)"
                " and start workers with: celery -A distributed_system worker"
            )

    def __enter__(self) -> "CeleryWorkers":
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def default_slices(self) -> int:
        """Two slices per worker process that consumes the run's queue (one if it answers
        without its pool size); workers on other queues would never take them."""
        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        try:
            queues = app.control.inspect(timeout=PING_TIMEOUT_SECONDS).active_queues() or {}
            consumers = [
                worker
                for worker, consumed in queues.items()
                if any(entry.get("name") == queue for entry in consumed or ())
            ]
            stats = {}
            if consumers:
                stats = (
                    app.control.inspect(
                        destination=consumers, timeout=PING_TIMEOUT_SECONDS, limit=len(consumers)
                    ).stats()
                    or {}
                )
        except (KombuError, OSError, KeyError, ValueError) as error:  # KeyError: an unknown scheme
            raise SimulationError(f"the Celery broker cannot be reached: {error}") from None
        if not consumers:
            raise SimulationError(
                f"no Celery worker consumes the queue {queue} (none answered within "
                f"{PING_TIMEOUT_SECONDS:.0f} s): start one with celery -A distributed_system worker"
                " and the same DS_CELERY_QUEUE"
            )
        processes = sum(
            stats.get(worker, {}).get("pool", {}).get("max-concurrency", 1) for worker in consumers
        )
        return SLICES_PER_WORKER_PROCESS * processes

    def submit(self, attempt_id: int, first: bool) -> None:
        try:
            app.send_task(SLICE_TASK, args=[attempt_id], queue=settings.CELERY_TASK_DEFAULT_QUEUE)
        except (KombuError, OSError, KeyError, ValueError) as error:
            raise SimulationError(f"the Celery broker refused slice work: {error}") from None

    def maintain(self) -> bool:
        return False  # Celery redelivers what a dead worker had taken (acks_late)

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)  # workers tell the default database only
