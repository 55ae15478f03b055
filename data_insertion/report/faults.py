"""Faults and resilience: each injected fault, its window and the records in flight on its
database meanwhile; then, per database, what retries and its circuit breaker did."""

from reportlab.lib.units import mm
from reportlab.platypus import Flowable

from ..results import Status
from ..summary import FaultSummary, RunSummary
from .formatting import format_count
from .layout import FAILED_ROW, FRAME_WIDTH, Layout


def faults_section(summary: RunSummary, layout: Layout) -> list[Flowable]:
    """Nothing for a run with no fault, no retry and no failure."""
    troubled = [m for m in summary.models.values() if m.retried or m.failed]
    if not summary.faults and not troubled:
        return []
    flowables: list[Flowable] = [layout.paragraph("Faults and resilience", layout.heading)]
    if summary.faults:
        flowables += [
            layout.paragraph(
                "Faults injected with --fault, each over its window in seconds from the run's "
                "start (shaded on the throughput chart), and the records that were in flight on "
                "its database while it held, by model and outcome.",
                layout.introduction,
            ),
            _faults_table(summary, layout),
        ]
    if troubled:
        flowables += [
            layout.paragraph("Retries and circuit breakers", layout.subheading),
            _resilience_table(troubled, layout),
            layout.paragraph(
                "Retried: committed or not, the record's transaction was tried more than once "
                "(a lock held elsewhere, a deadlock). Failed fast: the database's circuit "
                "breaker was open after repeated failures, so the record failed without "
                "waiting. Failed after waiting: the record's tries ran out, or its error was "
                "not worth another try.",
                layout.note,
            ),
        ]
    return flowables


def _faults_table(summary: RunSummary, layout: Layout):
    header = ["Fault", "Window (s)", "Models reached", "Inserted", "Rejected", "Failed"]
    rows, highlights = [], []
    for fault in summary.faults:
        end = "end" if fault.end_seconds is None else f"{fault.end_seconds:g}"
        by_status = {status: 0 for status in Status}
        for outcomes in fault.touched.values():
            for status, count in outcomes.items():
                by_status[Status(status)] += count
        rows.append(
            [
                layout.cell(_fault_label(fault)),
                f"{fault.start_seconds:g}-{end}",
                layout.cell(", ".join(fault.touched) or "none"),
                *(format_count(by_status[status]) for status in Status),
            ]
        )
        if by_status[Status.FAILED] or fault.error:
            highlights.append(("BACKGROUND", (0, len(rows)), (-1, len(rows)), FAILED_ROW))
    widths = [FRAME_WIDTH - 118 * mm, 22 * mm, 30 * mm, 22 * mm, 22 * mm, 22 * mm]
    return layout.table(header, rows, widths, right_aligned_from=3, extra_style=highlights)


def _fault_label(fault: FaultSummary) -> str:
    if fault.error:
        return f"{fault.spec}: not injected ({fault.error})"
    if fault.not_reached:
        return f"{fault.description}: not reached (the run ended first)"
    return fault.description


def _resilience_table(models, layout: Layout):
    header = ["Model", "Database", "Retried", "Failed fast", "Failed after waiting"]
    rows = [
        [
            layout.cell(model.model),
            layout.cell(model.database),
            format_count(model.retried),
            format_count(model.failed_fast),
            format_count(model.failed_after_waiting),
        ]
        for model in models
    ]
    widths = [24 * mm, 28 * mm] + [(FRAME_WIDTH - 52 * mm) / 3] * 3
    return layout.table(header, rows, widths, right_aligned_from=2)
