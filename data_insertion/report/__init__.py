"""The PDF report: render_pdf(summary) -> bytes, a printable view of one RunSummary.

Every number comes from the RunSummary (summary.py) and is only formatted here (formatting.py):
tables with ReportLab's platypus (sections.py, details.py), charts with reportlab.graphics as
vectors (charts.py), a header and "Page X of Y" on every page (pages.py), one look for all of them
(layout.py). Names in any script render as text: DejaVu Sans for Latin, Greek and Cyrillic, and
ReportLab's built-in CID fonts for Chinese, Japanese and Korean, switched per run of characters
(fonts.py). Without DejaVu Sans the report falls back to Helvetica and sends every character
Helvetica lacks to the Chinese CID font, which also holds Greek and Cyrillic.
"""

import functools
from dataclasses import dataclass
from io import BytesIO

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.platypus import SimpleDocTemplate

from ..results import MODEL_TITLES
from ..summary import RunSummary
from .details import VALUE_COLUMN_WEIGHTS
from .fonts import (
    CHINESE_FONT,
    FONT_DIRECTORIES,
    JAPANESE_FONT,
    KOREAN_FONT,
    ReportFonts,
    register_fonts,
)
from .formatting import run_shape
from .layout import (
    AUTHOR,
    FAILED_ROW,
    FRAME_WIDTH,
    GRID_GREY,
    HEADER_GREY,
    MARGIN,
    MODEL_COLORS,
    OUTCOME_COLORS,
    PAGE_HEIGHT,
    PAGE_WIDTH,
    REASON_ROWS_PER_MODEL,
    REJECTED_ROW,
    ROW_GREEN,
    TEXT_GREY,
    THREAD_BARS_PER_MODEL,
    THREAD_ROWS_PER_MODEL,
    TITLE,
    VALUE_CHARACTERS_SHOWN,
    Layout,
)
from .pages import NumberedCanvas, decorate_page
from .sections import story

__all__ = [
    "AUTHOR",
    "CHINESE_FONT",
    "FAILED_ROW",
    "FONT_DIRECTORIES",
    "FRAME_WIDTH",
    "GRID_GREY",
    "HEADER_GREY",
    "JAPANESE_FONT",
    "KOREAN_FONT",
    "MARGIN",
    "MODEL_COLORS",
    "MODEL_TITLES",
    "OUTCOME_COLORS",
    "PAGE_HEIGHT",
    "PAGE_WIDTH",
    "REASON_ROWS_PER_MODEL",
    "REJECTED_ROW",
    "ROW_GREEN",
    "TEXT_GREY",
    "THREAD_BARS_PER_MODEL",
    "THREAD_ROWS_PER_MODEL",
    "TITLE",
    "VALUE_CHARACTERS_SHOWN",
    "VALUE_COLUMN_WEIGHTS",
    "RenderedReport",
    "ReportFonts",
    "render_pdf",
    "render_report",
]


@dataclass(frozen=True)
class RenderedReport:
    pdf: bytes
    pages: int


def render_pdf(summary: RunSummary) -> bytes:
    return render_report(summary).pdf


def render_report(summary: RunSummary) -> RenderedReport:
    """The PDF and its page count (for the command's message; the bytes are the same)."""
    layout = Layout(_fonts())
    buffer = BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN + 8 * mm,
        bottomMargin=MARGIN + 6 * mm,
        title=TITLE,
        author=AUTHOR,
        subject=f"Run {summary.run_id}: {run_shape(summary)}",
        creator="generate_pdf_report (ReportLab)",
        keywords=["data insertion", "concurrency", "latency", summary.run_id],
        lang="en",
        pageCompression=1,
    )
    document.build(
        story(summary, layout),
        canvasmaker=functools.partial(
            NumberedCanvas, decorate=functools.partial(decorate_page, summary, layout.fonts)
        ),
    )
    return RenderedReport(pdf=buffer.getvalue(), pages=document.page)


def _fonts() -> ReportFonts:
    # FONT_DIRECTORIES is looked up here, in the package, at every render: setting
    # report.FONT_DIRECTORIES (as the Helvetica fallback's test does) is what changes the lookup.
    return register_fonts(FONT_DIRECTORIES)
