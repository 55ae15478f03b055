"""Rows per database: for each sharded model, the run's committed rows and rows/s in each of its
databases, and the skew (largest / mean), as the console and the JSON show them."""

from reportlab.lib.units import mm
from reportlab.platypus import Flowable

from ..summary import RunSummary
from .formatting import format_count
from .layout import CELL_FONT_SIZE, FRAME_WIDTH, Layout


def shards_section(summary: RunSummary, layout: Layout) -> list[Flowable]:
    """Nothing for a run whose models are each in one database."""
    sharded = [model for model in summary.models.values() if model.database_rows]
    if not sharded:
        return []
    header = ["Model", "Database", "Committed rows", "Rows/s", "Of the mean"]
    rows = []
    skew_rows = []
    for model in sharded:
        mean = sum(database.rows for database in model.database_rows) / len(model.database_rows)
        rows += [
            [
                layout.cell(model.model),
                layout.cell(database.database),
                format_count(database.rows),
                f"{database.rows_per_second:,.0f}",
                f"{database.rows / mean:.2f}" if mean else "-",
            ]
            for database in model.database_rows
        ]
        skew = "-" if model.skew is None else f"{model.skew:.2f}"
        rows.append([model.model, "skew (largest / mean)", "", "", skew])
        skew_rows.append(len(rows))  # the header is row 0
    widths = [24 * mm, 46 * mm] + [(FRAME_WIDTH - 70 * mm) / 3] * 3
    return [
        layout.paragraph("Rows per database", layout.heading),
        layout.table(
            header,
            rows,
            widths,
            right_aligned_from=2,
            extra_style=[
                ("FONT", (0, row), (-1, row), layout.fonts.bold, CELL_FONT_SIZE, 9)
                for row in skew_rows
            ],
        ),
        layout.paragraph(
            "Each sharded model's rows committed by this run, found by primary key in each of "
            "its databases afterwards, and their rate over the model's wall time. Of the mean: "
            "a database's rows over the mean of the model's databases; the skew is the largest "
            "of them (1.00: even; 1.15: a database holds 15 % more than its share).",
            layout.note,
        ),
    ]
