"""Detailed results: the records summary.py kept for each model, a row each."""

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Table

from ..results import Status
from ..summary import (
    INSERTED_RECORDS_KEPT,
    PROBLEM_RECORDS_KEPT,
    ModelSummary,
    RecordDetail,
    RunSummary,
)
from .formatting import format_ms, model_title, worker_label
from .layout import FAILED_ROW, FRAME_WIDTH, REJECTED_ROW, VALUE_CHARACTERS_SHOWN, Layout

# Relative widths of each model's value columns in the detailed table.
VALUE_COLUMN_WEIGHTS = {
    "user": {"name": 1.0, "email": 1.8},
    "product": {"name": 1.3, "price": 0.8},
    "order": {"user_id": 0.6, "product_id": 0.6, "quantity": 0.6},
}


def details_section(summary: RunSummary, layout: Layout) -> list[Flowable]:
    flowables: list[Flowable] = [
        layout.paragraph("Detailed results", layout.heading),
        layout.paragraph(
            f"Every rejected or failed record up to {PROBLEM_RECORDS_KEPT:,} per model and the "
            f"first {INSERTED_RECORDS_KEPT:,} inserted ones, in the order they finished. "
            "Rejected rows are amber, failed rows red.",
            layout.note,
        ),
    ]
    for model in summary.models.values():
        flowables.append(layout.paragraph(model_title(model), layout.subheading))
        if not model.records:
            flowables.append(layout.paragraph("No records."))
        else:
            flowables.append(_records_table(model, layout))
        if model.records_omitted:
            flowables.append(
                layout.paragraph(
                    f"{model.records_omitted:,} more records are not listed here: successes are "
                    "summarised in the tables above, and every rejection or failure is counted "
                    "under 'Rejections and failures'.",
                    layout.note,
                )
            )
    return flowables


def _records_table(model: ModelSummary, layout: Layout) -> Table:
    fields = list(model.records[0].values) if model.records else []
    weights = VALUE_COLUMN_WEIGHTS.get(model.model, {})
    weights = {name: weights.get(name, 1.0) for name in fields}
    fixed = {"#": 9 * mm, "Outcome": 15 * mm, "Thread": 18 * mm, "ms": 11 * mm, "Id": 12 * mm}
    reasons_weight = 1.8
    free = FRAME_WIDTH - sum(fixed.values())
    unit = free / (sum(weights.values()) + reasons_weight)
    header = ["#", "Outcome", *(name.replace("_", " ").capitalize() for name in fields)]
    header += ["Reasons", "Thread", "ms", "Id"]
    widths = [fixed["#"], fixed["Outcome"], *(unit * weights[name] for name in fields)]
    widths += [unit * reasons_weight, fixed["Thread"], fixed["ms"], fixed["Id"]]
    rows, highlights = [], []
    for number, record in enumerate(model.records, start=1):
        rows.append(_record_row(model, record, number, fields, layout))
        if record.status != Status.INSERTED:
            shade = FAILED_ROW if record.status == Status.FAILED else REJECTED_ROW
            highlights.append(("BACKGROUND", (0, number), (-1, number), shade))
    return layout.table(
        header, rows, widths, right_aligned_from=len(header) - 2, extra_style=highlights
    )


def _record_row(
    model: ModelSummary, record: RecordDetail, number: int, fields: list[str], layout: Layout
) -> list:
    return [
        str(number),
        record.status,
        *(layout.cell(_clipped(record.values.get(name, ""))) for name in fields),
        layout.cell(record.reasons),
        layout.cell(worker_label(model, record.thread)),
        format_ms(record.latency_ms),
        "" if record.pk is None else str(record.pk),
    ]


def _clipped(value: str) -> str:
    """A 250-character email would fill a page; its reason already says how long it is."""
    if len(value) <= VALUE_CHARACTERS_SHOWN:
        return value
    return f"{value[: VALUE_CHARACTERS_SHOWN - 8]}… ({len(value):,} characters)"
