"""The report's look: page geometry, colours, bounds, paragraph styles and the table style."""

import re
from collections.abc import Iterable

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Table, TableStyle

from ..results import Status
from .fonts import ReportFonts, text_markup, text_width

TITLE = "Concurrent data insertion report"
AUTHOR = "distributed-system data_insertion"

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 16 * mm
FRAME_WIDTH = PAGE_WIDTH - 2 * MARGIN

# Bounds that keep a run with 1000 threads per model readable and the PDF small.
THREAD_ROWS_PER_MODEL = 20
THREAD_BARS_PER_MODEL = 60
REASON_ROWS_PER_MODEL = 30
VALUE_CHARACTERS_SHOWN = 40

OUTCOME_COLORS = {
    Status.INSERTED: colors.HexColor("#2e7d32"),
    Status.REJECTED: colors.HexColor("#f9a825"),
    Status.FAILED: colors.HexColor("#c62828"),
}
MODEL_COLORS = (colors.HexColor("#1f77b4"), colors.HexColor("#ff7f0e"), colors.HexColor("#9467bd"))
HEADER_GREY = colors.HexColor("#d0d0d0")
GRID_GREY = colors.HexColor("#9e9e9e")
ROW_GREEN = colors.HexColor("#e8f5e9")
REJECTED_ROW = colors.HexColor("#fff0c2")
FAILED_ROW = colors.HexColor("#ffcdd2")
TEXT_GREY = colors.HexColor("#555555")
# A fault's window on the throughput chart: a light red band, its label darker.
FAULT_SHADE = colors.Color(0.9, 0.2, 0.2, alpha=0.12)
FAULT_LABEL = colors.HexColor("#b71c1c")

CELL_FONT_SIZE = 7.5
CELL_PADDING = 3  # points left and right of a table cell's text


class Layout:
    """The fonts and paragraph styles of one report, and the markup that puts text in them."""

    def __init__(self, fonts: ReportFonts) -> None:
        self.fonts = fonts
        self.body = ParagraphStyle(
            "body", fontName=fonts.regular, fontSize=9, leading=11.5, splitLongWords=1
        )
        self.title = ParagraphStyle(
            "title", parent=self.body, fontName=fonts.bold, fontSize=18, leading=22, spaceAfter=2
        )
        # A heading, and the note that introduces what follows it, stay on the page of what
        # they head: never alone at the bottom of one.
        self.heading = ParagraphStyle(
            "heading",
            parent=self.body,
            fontName=fonts.bold,
            fontSize=13,
            leading=16,
            spaceBefore=10,
            spaceAfter=5,
            keepWithNext=1,
        )
        self.subheading = ParagraphStyle(
            "subheading",
            parent=self.heading,
            fontSize=10.5,
            leading=13,
            spaceBefore=8,
            spaceAfter=3,
        )
        self.note = ParagraphStyle(
            "note", parent=self.body, fontSize=8, leading=10, textColor=TEXT_GREY, spaceBefore=3
        )
        self.introduction = ParagraphStyle("introduction", parent=self.note, keepWithNext=1)
        self.cell_style = ParagraphStyle(
            "cell", parent=self.body, fontSize=CELL_FONT_SIZE, leading=9
        )

    def text(self, value: object) -> str:
        """text_markup in this report's fonts."""
        return text_markup(value, self.fonts)

    def paragraph(self, markup: str, style: ParagraphStyle | None = None) -> Paragraph:
        return Paragraph(markup, style or self.body)

    def text_width(self, value: str) -> float:
        """The width of a value in a table cell, in points."""
        return text_width(value, CELL_FONT_SIZE, self.fonts)

    def cell(self, value: object) -> Paragraph:
        return Paragraph(self.text(value), self.cell_style)

    def address_cell(self, address: str, column_width: float) -> Paragraph:
        """An email address in a column of that width: it wraps, where it must, before its "@" and
        before the dots of its domain, never inside a word (unless one word alone is too wide)."""
        room = column_width - 2 * CELL_PADDING
        lines = [""]
        for piece in _address_pieces(address):
            if lines[-1] and self.text_width(lines[-1] + piece) > room:
                lines.append(piece)
            else:
                lines[-1] += piece
        return Paragraph("<br/>".join(map(self.text, lines)), self.cell_style)

    def table(
        self,
        header: list[str],
        rows: list[list],
        widths: list[float],
        right_aligned_from: int,
        extra_style: Iterable[tuple] = (),
    ) -> Table:
        """The seed's look: grey header repeated on every page, grid, light-green stripes."""
        table = Table([header, *rows], colWidths=widths, repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("FONT", (0, 0), (-1, -1), self.fonts.regular, CELL_FONT_SIZE, 9),
                    ("FONT", (0, 0), (-1, 0), self.fonts.bold, CELL_FONT_SIZE, 9),
                    ("BACKGROUND", (0, 0), (-1, 0), HEADER_GREY),
                    ("ROWBACKGROUNDS", (0, 1), (-1, -1), [ROW_GREEN, colors.white]),
                    ("GRID", (0, 0), (-1, -1), 0.4, GRID_GREY),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("ALIGN", (right_aligned_from, 0), (-1, -1), "RIGHT"),
                    ("TOPPADDING", (0, 0), (-1, -1), 2),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                    ("LEFTPADDING", (0, 0), (-1, -1), CELL_PADDING),
                    ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PADDING),
                    *extra_style,
                ]
            )
        )
        return table


def _address_pieces(address: str) -> list[str]:
    """ "ann+x@mail.example.com" -> ["ann+x", "@mail", ".example", ".com"]: the places an address
    may wrap, before its "@" and before each dot after it (before every dot in one with no "@")."""
    local, at, domain = address.partition("@")
    if not at:
        return re.split(r"(?=\.)", address)
    return [local, *re.split(r"(?=\.)", at + domain)]
