"""Processes and workers: for a run spread over local processes or Celery workers, its executors
and their throughput, each slice's attempts (redone ones highlighted), and the threads added up
per executor. Nothing for a one-process run."""

from reportlab.lib.units import mm
from reportlab.platypus import Flowable

from ..summary import RunSummary, ScaleOutSummary, SliceAttemptSummary
from .charts import executor_chart
from .formatting import format_count, format_ms
from .layout import FAILED_ROW, FRAME_WIDTH, REJECTED_ROW, Layout

# Beyond this many attempts, only those of slices that were redone or did not finish are listed.
ATTEMPT_ROWS_SHOWN = 64
PHASE_MODELS = {1: "users, products", 2: "orders"}


def spread_fact(summary: RunSummary) -> str:
    """The run header's line: "2 local processes, 2 slices" or "Celery workers, 8 slices"."""
    scale_out = summary.scale_out
    if scale_out.transport == "processes":
        processes = summary.config.get("processes", len(scale_out.executors))
        over = f"{format_count(processes)} local processes"
    else:
        over = scale_out.transport
    threads = format_count(summary.config.get("threads", 0))
    slices = format_count(scale_out.slices)
    return f"{over}, {slices} slices, each slice with {threads} threads per model"


def scale_out_section(summary: RunSummary, layout: Layout) -> list[Flowable]:
    scale_out = summary.scale_out
    if scale_out is None:
        return []
    flowables: list[Flowable] = [
        layout.paragraph("Processes and workers", layout.heading),
        layout.paragraph(
            f"The run was spread over {layout.text(spread_fact(summary))}. Each slice holds "
            "every n-th record of each model; phase 1 inserts the users and products, phase 2 "
            "the orders that reference them. An executor is one process (host:pid) that ran "
            "slices; a slice whose executor stopped was run again by another.",
            layout.introduction,
        ),
        layout.paragraph("Executors", layout.subheading),
    ]
    if scale_out.executors:
        flowables += [
            _executors_table(scale_out, layout),
            executor_chart(scale_out.executors, layout),
            layout.paragraph(
                "Attempts: the slices it finished. Wall s: the time its finished attempts ran, "
                "added up; rows/s: its rows committed per second of it.",
                layout.note,
            ),
        ]
    else:
        flowables.append(layout.paragraph("No executor finished a slice."))
    flowables += [
        layout.paragraph("Slices and attempts", layout.subheading),
        *_attempts_table(scale_out, layout),
    ]
    flowables += [
        layout.paragraph(f'<font color="#c62828">{layout.text(message)}</font>', layout.note)
        for message in scale_out.unfinished
    ]
    return flowables


def _executors_table(scale_out: ScaleOutSummary, layout: Layout):
    header = ["Executor", "Slices (phase/slice)", "Attempts", "Inserted", "Wall s", "Rows/s"]
    rows = []
    for executor in scale_out.executors:
        slices = ", ".join(
            f"{attempt.phase}/{attempt.slice}"
            for attempt in scale_out.attempts
            if attempt.executor == executor.executor and attempt.state == "finished"
        )
        rows.append(
            [
                layout.cell(executor.executor),
                layout.cell(slices),
                format_count(executor.attempts),
                format_count(executor.inserted),
                f"{executor.wall_seconds:.2f}",
                f"{executor.rows_per_second:,.0f}",
            ]
        )
    widths = [44 * mm, FRAME_WIDTH - 132 * mm, 22 * mm, 22 * mm, 22 * mm, 22 * mm]
    return layout.table(header, rows, widths, right_aligned_from=2)


def _attempts_table(scale_out: ScaleOutSummary, layout: Layout) -> list[Flowable]:
    redone = {(attempts[0].phase, attempts[0].slice) for attempts in scale_out.redone_slices()}
    unfinished = {
        (attempt.phase, attempt.slice)
        for attempt in scale_out.attempts
        if scale_out.executor_of(attempt.phase, attempt.slice) is None
    }
    shown = scale_out.attempts
    if len(shown) > ATTEMPT_ROWS_SHOWN:
        shown = [a for a in shown if (a.phase, a.slice) in redone | unfinished]
    header = ["Phase", "Slice", "Attempt", "Executor", "State", "Inserted", "Found\ncommitted"]
    header.append("Wall s")
    rows, highlights = [], []
    for attempt in shown:
        rows.append(_attempt_row(attempt, layout))
        if attempt.state != "finished":
            highlights.append(("BACKGROUND", (0, len(rows)), (-1, len(rows)), FAILED_ROW))
        elif (attempt.phase, attempt.slice) in redone:
            highlights.append(("BACKGROUND", (0, len(rows)), (-1, len(rows)), REJECTED_ROW))
    flowables: list[Flowable] = []
    if rows:
        widths = [30 * mm, 14 * mm, 16 * mm, FRAME_WIDTH - 148 * mm, 22 * mm]
        widths += [22 * mm, 22 * mm, 22 * mm]
        flowables.append(
            layout.table(header, rows, widths, right_aligned_from=5, extra_style=highlights)
        )
    for attempt in shown:
        if attempt.state != "finished" and attempt.reason:
            flowables.append(
                layout.paragraph(
                    f"Phase {attempt.phase} slice {attempt.slice} attempt {attempt.attempt} "
                    f"abandoned: {attempt.reason}.",
                    layout.note,
                )
            )
    hidden = len(scale_out.attempts) - len(shown)
    if hidden:
        flowables.append(
            layout.paragraph(
                f"{hidden:,} more attempts are not listed: their slices each finished at the "
                "first attempt (the JSON summary lists them all).",
                layout.note,
            )
        )
    flowables.append(
        layout.paragraph(
            "Red: an attempt abandoned (its executor stopped beating or gave it up) or never "
            "taken. Amber: the attempt that redid its slice; 'Found committed' counts the "
            "records an earlier attempt had committed, found by their identity and counted "
            "once, never inserted twice.",
            layout.note,
        )
    )
    return flowables


def _attempt_row(attempt: SliceAttemptSummary, layout: Layout) -> list:
    return [
        f"{attempt.phase} ({PHASE_MODELS.get(attempt.phase, '?')})",
        format_count(attempt.slice),
        format_count(attempt.attempt),
        layout.cell(attempt.executor or "none (never taken)"),
        attempt.state,
        format_count(attempt.inserted),
        format_count(attempt.found_committed),
        f"{attempt.wall_seconds:.2f}",
    ]


def executor_threads_section(summary: RunSummary, layout: Layout) -> list[Flowable]:
    """The thread analysis per process or worker: each model's threads on each executor, added
    up. Nothing for a one-process run."""
    groups = summary.threads_by_executor()
    if not groups:
        return []
    header = ["Model", "Executor", "Threads", "Handled", "Inserted", "Rejected", "Failed"]
    header.append("Mean ms")
    rows = [
        [
            layout.cell(group.model),
            layout.cell(group.executor),
            format_count(group.threads),
            format_count(group.handled),
            format_count(group.inserted),
            format_count(group.rejected),
            format_count(group.failed),
            format_ms(group.mean_latency_ms),
        ]
        for group in groups
    ]
    widths = [24 * mm, 44 * mm] + [(FRAME_WIDTH - 68 * mm) / 6] * 6
    return [
        layout.paragraph("Threads by process or worker", layout.subheading),
        layout.table(header, rows, widths, right_aligned_from=2),
        layout.paragraph(
            "Each model's threads added up per executor: a thread's slice is in its name "
            "(s2-user-worker-001: slice 2), and the slice ran on the executor that finished it "
            "in the model's phase. Mean ms is weighted by the records each thread handled.",
            layout.note,
        ),
    ]
