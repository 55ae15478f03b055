"""Detailed results: the records summary.py kept for each model, a row each."""

from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, Table

from ..results import Status, record_label
from ..summary import (
    INSERTED_RECORDS_KEPT,
    PROBLEM_RECORDS_KEPT,
    ModelSummary,
    RecordDetail,
    RunSummary,
)
from .formatting import format_ms, model_title
from .layout import (
    CELL_PADDING,
    FAILED_ROW,
    FRAME_WIDTH,
    REJECTED_ROW,
    VALUE_CHARACTERS_SHOWN,
    Layout,
)

# Relative widths of each model's value columns in the detailed table.
VALUE_COLUMN_WEIGHTS = {
    "user": {"name": 1.2, "email": 1.6},
    "product": {"name": 1.3, "price": 0.8},
    "order": {"user_id": 0.6, "product_id": 0.6, "quantity": 0.6},
}
THREAD_COLUMN_MAX = 36 * mm


def details_section(summary: RunSummary, layout: Layout) -> list[Flowable]:
    flowables: list[Flowable] = [
        layout.paragraph("Detailed results", layout.heading),
        layout.paragraph(
            f"Every rejected or failed record up to {PROBLEM_RECORDS_KEPT:,} per model and the "
            f"first {INSERTED_RECORDS_KEPT:,} inserted ones, in the order they finished. "
            "Rejected rows are amber, failed rows red.",
            layout.introduction,
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
    # Wide enough for the longest thread name, so "product-worker-001" stays on one line.
    thread_width = min(
        max(layout.text_width(record.thread) for record in model.records) + 2 * CELL_PADDING + 1,
        THREAD_COLUMN_MAX,
    )
    fixed = {"#": 9 * mm, "Outcome": 15 * mm, "Thread": thread_width, "ms": 11 * mm, "Id": 12 * mm}
    reasons_weight = 1.8
    free = FRAME_WIDTH - sum(fixed.values())
    unit = free / (sum(weights.values()) + reasons_weight)
    value_widths = {name: unit * weights[name] for name in fields}
    header = ["#", "Outcome", *(name.replace("_", " ").capitalize() for name in fields)]
    header += ["Reasons", "Thread", "ms", "Id"]
    widths = [fixed["#"], fixed["Outcome"], *value_widths.values()]
    widths += [unit * reasons_weight, fixed["Thread"], fixed["ms"], fixed["Id"]]
    rows, highlights = [], []
    for number, record in enumerate(model.records, start=1):
        rows.append(_record_row(model, record, number, value_widths, layout))
        if record.status != Status.INSERTED:
            shade = FAILED_ROW if record.status == Status.FAILED else REJECTED_ROW
            highlights.append(("BACKGROUND", (0, number), (-1, number), shade))
    return layout.table(
        header, rows, widths, right_aligned_from=len(header) - 2, extra_style=highlights
    )


def _record_row(
    model: ModelSummary,
    record: RecordDetail,
    number: int,
    value_widths: dict[str, float],
    layout: Layout,
) -> list:
    return [
        str(number),
        record.status,
        *(_value_cell(model, record, name, width, layout) for name, width in value_widths.items()),
        layout.cell(record.reasons),
        layout.cell(record.thread),
        format_ms(record.latency_ms),
        "" if record.pk is None else str(record.pk),
    ]


def _value_cell(
    model: ModelSummary, record: RecordDetail, name: str, width: float, layout: Layout
) -> Paragraph:
    if name == "name":  # an empty name reads "(no name)", as on the console
        return layout.cell(_clipped(record_label(model.model, record.values)))
    value = _clipped(record.values.get(name, ""))
    if name == "email":
        return layout.address_cell(value, width)
    return layout.cell(value)


def _clipped(value: str) -> str:
    """A 250-character email would fill a page; its reason already says how long it is."""
    if len(value) <= VALUE_CHARACTERS_SHOWN:
        return value
    return f"{value[: VALUE_CHARACTERS_SHOWN - 8]}… ({len(value):,} characters)"
