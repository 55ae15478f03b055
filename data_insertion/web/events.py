"""Server-sent events for one run: a "snapshot" event per progress snapshot (those already
recorded first), then one "end" event with the run's final state, and the stream closes.

The stream reads the default database, so it follows a run wherever it executes (this server,
a background process, insert_data in a terminal). Under WSGI each open stream holds a server
thread: at most MAX_OPEN_STREAMS at once, each ending with its run.
"""

import threading
import time
from collections.abc import Iterator

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse

from ..runs.models import FINISHED_STATUSES, Run, RunSnapshot
from .schemas import RunOut, SnapshotOut

MAX_OPEN_STREAMS = 16
POLL_SECONDS = 0.5
# A comment line this often: proxies keep the connection, and a gone client is noticed.
KEEPALIVE_POLLS = 20

_open_streams = threading.BoundedSemaphore(MAX_OPEN_STREAMS)


def event_stream_response(request: HttpRequest, run: Run) -> StreamingHttpResponse | JsonResponse:
    """The run's events after the Last-Event-ID a reconnecting browser sends, or after
    `?after=N` (a page that already shows snapshots 1..N)."""
    if not _open_streams.acquire(blocking=False):
        return JsonResponse(
            {"detail": f"{MAX_OPEN_STREAMS} event streams are open; try again when one ends"},
            status=503,
        )
    try:
        after = int(request.headers.get("Last-Event-ID") or request.GET.get("after") or 0)
    except ValueError:
        after = 0
    response = StreamingHttpResponse(
        _ReleasingStream(run_events(run.pk, after)), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx would otherwise hold events back
    return response


def run_events(run_id: int, after_sequence: int = 0) -> Iterator[str]:
    """The events of run `run_id` from the snapshot after `after_sequence` until its end."""
    yield "retry: 2000\n\n"
    polls = 0
    while True:
        # The status first: a run seen finished has recorded all its snapshots before.
        finished = Run.objects.filter(pk=run_id, status__in=FINISHED_STATUSES).exists()
        for snapshot in RunSnapshot.objects.filter(run_id=run_id, sequence__gt=after_sequence):
            after_sequence = snapshot.sequence
            data = SnapshotOut.model_validate(snapshot.data).model_dump_json()
            yield format_event("snapshot", data, event_id=snapshot.sequence)
        if finished:
            run = Run.objects.defer("summary").get(pk=run_id)
            yield format_event("end", RunOut.from_orm(run).model_dump_json())
            return
        polls += 1
        if polls % KEEPALIVE_POLLS == 0:
            yield ": still running\n\n"
        time.sleep(POLL_SECONDS)


def format_event(event: str, data: str, event_id: int | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {data}")
    return "\n".join(lines) + "\n\n"


class _ReleasingStream:
    """The events, giving their slot back when the response is closed (Django closes it when
    the client has gone or the stream has ended), even if it was never read."""

    def __init__(self, events: Iterator[str]) -> None:
        self.events = events
        self.released = False

    def __iter__(self) -> Iterator[str]:
        return self.events

    def close(self) -> None:
        self.events.close()
        if not self.released:
            self.released = True
            _open_streams.release()
