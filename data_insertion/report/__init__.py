"""The PDF report: render_pdf(summary) -> bytes, a printable view of one RunSummary.

Every number comes from the RunSummary (summary.py) and is only formatted here (formatting.py):
tables with ReportLab's platypus (sections.py, details.py), charts with reportlab.graphics as
vectors (charts.py), a header and "Page X of Y" on every page (pages.py), one look for all of them
(layout.py). Names in any script render as text in embedded TrueType fonts, switched per run of
characters (fonts.py): DejaVu Sans, or ReportLab's Vera where DejaVu Sans is not installed, and
WenQuanYi Micro Hei for every character that font lacks (Chinese, Japanese, Korean).
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
from .fonts import CJK_FONT, FONT_DIRECTORIES, ReportFonts, register_fonts
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
    "CJK_FONT",
    "FAILED_ROW",
    "FONT_DIRECTORIES",
    "FRAME_WIDTH",
    "GRID_GREY",
    "HEADER_GREY",
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
    fonts = _fonts()
    layout = Layout(fonts)
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
        # Every page starts in this font: ReportLab's default, Helvetica, is never embedded.
        initialFontName=fonts.regular,
    )
    document.build(
        story(summary, layout),
        canvasmaker=functools.partial(
            NumberedCanvas, decorate=functools.partial(decorate_page, summary, fonts)
        ),
    )
    return RenderedReport(pdf=buffer.getvalue(), pages=document.page)


def _fonts() -> ReportFonts:
    # FONT_DIRECTORIES is looked up here, in the package, at every render: setting
    # report.FONT_DIRECTORIES (as the Vera fallback's test does) is what changes the lookup.
    return register_fonts(FONT_DIRECTORIES)
