"""Every page: the header, the footer and "Page X of Y"."""

from collections.abc import Callable

from reportlab.pdfgen.canvas import Canvas

from ..summary import RunSummary
from .fonts import ReportFonts
from .formatting import format_started, run_shape
from .layout import GRID_GREY, MARGIN, PAGE_HEIGHT, PAGE_WIDTH, TEXT_GREY, TITLE


class NumberedCanvas(Canvas):
    """Two passes: keep every page until the end, when the page count is known, then draw each
    with its header and "Page X of Y" footer (ReportLab's NumberedCanvas recipe)."""

    def __init__(self, *args, decorate: Callable[[Canvas, int, int], None], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._decorate = decorate
        self._pages: list[dict] = []

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        for number, page in enumerate(self._pages, start=1):
            self.__dict__.update(page)
            self._decorate(self, number, len(self._pages))
            super().showPage()
        super().save()


def decorate_page(
    summary: RunSummary, fonts: ReportFonts, canvas: Canvas, page: int, pages: int
) -> None:
    canvas.saveState()
    canvas.setFillColor(TEXT_GREY)
    canvas.setStrokeColor(GRID_GREY)
    canvas.setLineWidth(0.5)
    top = PAGE_HEIGHT - MARGIN
    canvas.setFont(fonts.bold, 8)
    canvas.drawString(MARGIN, top, TITLE)
    canvas.setFont(fonts.regular, 8)
    canvas.drawRightString(
        PAGE_WIDTH - MARGIN, top, f"{format_started(summary)} - {run_shape(summary)}"
    )
    canvas.line(MARGIN, top - 3, PAGE_WIDTH - MARGIN, top - 3)
    bottom = MARGIN
    canvas.line(MARGIN, bottom + 10, PAGE_WIDTH - MARGIN, bottom + 10)
    canvas.drawString(MARGIN, bottom, f"Run {summary.run_id}")
    canvas.drawRightString(PAGE_WIDTH - MARGIN, bottom, f"Page {page} of {pages}")
    canvas.restoreState()
