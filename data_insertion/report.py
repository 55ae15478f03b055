"""The PDF report: render_pdf(summary) -> bytes, a printable view of one RunSummary.

Every number comes from the RunSummary (summary.py) and is only formatted here: tables with
ReportLab's platypus, charts with reportlab.graphics as vectors. Names in any script render as
text: DejaVu Sans for Latin, Greek and Cyrillic, and ReportLab's built-in CID fonts for Chinese,
Japanese and Korean, switched per run of characters. Without DejaVu Sans the report falls back
to Helvetica and sends every character Helvetica lacks to the Chinese CID font, which also
holds Greek and Cyrillic.
"""

import functools
import itertools
import os
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, Group, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from .summary import (
    INSERTED_RECORDS_KEPT,
    PROBLEM_RECORDS_KEPT,
    ModelSummary,
    RecordDetail,
    RunSummary,
    ThreadSummary,
)

TITLE = "Concurrent data insertion report"
AUTHOR = "distributed-system data_insertion"

# DejaVu Sans covers Latin, Greek and Cyrillic. These are the folders it is usually installed in
# on Linux (Debian/Ubuntu, Fedora, Arch, FreeBSD), macOS and Windows.
FONT_DIRECTORIES: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu-sans-fonts"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/local/share/fonts/dejavu"),
    Path("/Library/Fonts"),
    Path("~/Library/Fonts").expanduser(),
    Path(os.environ.get("WINDIR", "C:/Windows")) / "Fonts",
    Path(os.environ.get("LOCALAPPDATA", "~")).expanduser() / "Microsoft/Windows/Fonts",
)
CHINESE_FONT = "STSong-Light"
JAPANESE_FONT = "HeiseiMin-W3"
KOREAN_FONT = "HYSMyeongJo-Medium"

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 16 * mm
FRAME_WIDTH = PAGE_WIDTH - 2 * MARGIN

# Bounds that keep a run with 1000 threads per model readable and the PDF small.
THREAD_ROWS_PER_MODEL = 20
THREAD_BARS_PER_MODEL = 60
REASON_ROWS_PER_MODEL = 30
VALUE_CHARACTERS_SHOWN = 40

MODEL_TITLES = {"user": "Users", "product": "Products", "order": "Orders"}
OUTCOME_COLORS = {
    "inserted": colors.HexColor("#2e7d32"),
    "rejected": colors.HexColor("#f9a825"),
    "failed": colors.HexColor("#c62828"),
}
MODEL_COLORS = (colors.HexColor("#1f77b4"), colors.HexColor("#ff7f0e"), colors.HexColor("#9467bd"))
HEADER_GREY = colors.HexColor("#d0d0d0")
GRID_GREY = colors.HexColor("#9e9e9e")
ROW_GREEN = colors.HexColor("#e8f5e9")
REJECTED_ROW = colors.HexColor("#fff0c2")
FAILED_ROW = colors.HexColor("#ffcdd2")
TEXT_GREY = colors.HexColor("#555555")


@dataclass(frozen=True)
class ReportFonts:
    regular: str
    bold: str
    # False for the Helvetica fallback, whose encoding holds only Western European letters.
    unicode: bool


@dataclass(frozen=True)
class RenderedReport:
    pdf: bytes
    pages: int


def render_pdf(summary: RunSummary) -> bytes:
    return render_report(summary).pdf


def render_report(summary: RunSummary) -> RenderedReport:
    """The PDF and its page count (for the command's message; the bytes are the same)."""
    layout = _Layout(_fonts())
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
        subject=f"Run {summary.run_id}: {_run_shape(summary)}",
        creator="generate_pdf_report (ReportLab)",
        keywords=["data insertion", "concurrency", "latency", summary.run_id],
        lang="en",
        pageCompression=1,
    )
    document.build(
        _story(summary, layout),
        canvasmaker=functools.partial(
            _NumberedCanvas, decorate=functools.partial(_decorate_page, summary, layout.fonts)
        ),
    )
    return RenderedReport(pdf=buffer.getvalue(), pages=document.page)


# Fonts and text


def _fonts() -> ReportFonts:
    return _register_fonts(FONT_DIRECTORIES)


@functools.cache
def _register_fonts(directories: tuple[Path, ...]) -> ReportFonts:
    for name in (CHINESE_FONT, JAPANESE_FONT, KOREAN_FONT):
        pdfmetrics.registerFont(UnicodeCIDFont(name))
    for directory in directories:
        regular, bold = directory / "DejaVuSans.ttf", directory / "DejaVuSans-Bold.ttf"
        try:
            pdfmetrics.registerFont(TTFont("DejaVuSans", regular))
            pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", bold if bold.is_file() else regular))
        except (OSError, TTFError):  # not there, or not a font ReportLab can embed
            continue
        pdfmetrics.registerFontFamily(
            "DejaVuSans",
            normal="DejaVuSans",
            bold="DejaVuSans-Bold",
            italic="DejaVuSans",
            boldItalic="DejaVuSans-Bold",
        )
        return ReportFonts("DejaVuSans", "DejaVuSans-Bold", unicode=True)
    return ReportFonts("Helvetica", "Helvetica-Bold", unicode=False)


def _is_cjk(character: str) -> bool:
    code = ord(character)
    return (
        0x1100 <= code <= 0x11FF  # Hangul Jamo
        or 0x2E80 <= code <= 0x9FFF  # CJK radicals, punctuation, kana, ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0xFF00 <= code <= 0xFFEF  # full- and half-width forms
        or 0x20000 <= code <= 0x3FFFF  # rare ideographs
    )


def _cid_font_for(run: str) -> str:
    """Kana make a run Japanese and Hangul Korean; ideographs alone are read as Chinese."""
    codes = [ord(character) for character in run]
    if any(0x3040 <= code <= 0x30FF or 0xFF66 <= code <= 0xFF9F for code in codes):
        return JAPANESE_FONT
    if any(
        0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F or 0xAC00 <= code <= 0xD7AF
        for code in codes
    ):
        return KOREAN_FONT
    return CHINESE_FONT


def _in_helvetica(character: str) -> bool:
    try:
        character.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _visible(text: str) -> str:
    """Control characters (a rejected name's NUL) written as their code point, not dropped."""
    return "".join(
        f"[U+{ord(character):04X}]" if unicodedata.category(character) == "Cc" else character
        for character in text
    )


class _Layout:
    """The fonts and paragraph styles of one report, and the markup that puts text in them."""

    def __init__(self, fonts: ReportFonts) -> None:
        self.fonts = fonts
        self.body = ParagraphStyle(
            "body", fontName=fonts.regular, fontSize=9, leading=11.5, splitLongWords=1
        )
        self.title = ParagraphStyle(
            "title", parent=self.body, fontName=fonts.bold, fontSize=18, leading=22, spaceAfter=2
        )
        self.heading = ParagraphStyle(
            "heading",
            parent=self.body,
            fontName=fonts.bold,
            fontSize=13,
            leading=16,
            spaceBefore=10,
            spaceAfter=5,
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
        self.cell_style = ParagraphStyle("cell", parent=self.body, fontSize=7.5, leading=9)

    def text(self, value: object) -> str:
        """Paragraph markup for data: escaped, and each run of characters in a font that has it."""
        fonts = self.fonts

        def needs_cid_font(character: str) -> bool:
            return _is_cjk(character) or (not fonts.unicode and not _in_helvetica(character))

        parts = []
        for cid, characters in itertools.groupby(_visible(str(value)), key=needs_cid_font):
            run = "".join(characters)
            if cid:
                font = _cid_font_for(run) if any(map(_is_cjk, run)) else CHINESE_FONT
                parts.append(f'<font name="{font}">{escape(run)}</font>')
            else:
                parts.append(escape(run))
        return "".join(parts)

    def paragraph(self, markup: str, style: ParagraphStyle | None = None) -> Paragraph:
        return Paragraph(markup, style or self.body)

    def cell(self, value: object) -> Paragraph:
        return Paragraph(self.text(value), self.cell_style)

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
                    ("FONT", (0, 0), (-1, -1), self.fonts.regular, 7.5, 9),
                    ("FONT", (0, 0), (-1, 0), self.fonts.bold, 7.5, 9),
                    ("BACKGROUND", (0, 0), (-1, 0), HEADER_GREY),
                    ("ROWBACKGROUNDS", (0, 1), (-1, -1), [ROW_GREEN, colors.white]),
                    ("GRID", (0, 0), (-1, -1), 0.4, GRID_GREY),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("ALIGN", (right_aligned_from, 0), (-1, -1), "RIGHT"),
                    ("TOPPADDING", (0, 0), (-1, -1), 2),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                    ("LEFTPADDING", (0, 0), (-1, -1), 3),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 3),
                    *extra_style,
                ]
            )
        )
        return table


# Formatting: every number as the console shows it, or as a bare integer where a reader
# (or a checker) compares it with a count taken from a database.


def _count(value: int) -> str:
    return f"{value:,}"


def _ms(value: float) -> str:
    return f"{value:,.2f}"


def _share(value: float) -> str:
    """A percentage that reads 100% only when it is exactly 100%."""
    percent = value * 100
    if percent < 100:
        percent = min(percent, 99.99)
    return f"{percent:.2f}%"


def _started(summary: RunSummary) -> str:
    try:
        started = datetime.fromisoformat(summary.started_at)
    except ValueError:
        return summary.started_at
    zone = started.tzname() or ""
    return f"{started:%Y-%m-%d %H:%M:%S} {zone}".strip()


def _run_shape(summary: RunSummary) -> str:
    config = summary.config
    return (
        f"{config.get('threads', '?')} threads and {config.get('records', '?')} records per model"
    )


def _short_bound(milliseconds: float) -> str:
    return f"{milliseconds:.2g}" if milliseconds < 10 else f"{milliseconds:,.0f}"


def _model_title(model: ModelSummary) -> str:
    return f"{MODEL_TITLES.get(model.model, model.model)} ({model.database})"


# The document


def _story(summary: RunSummary, layout: _Layout) -> list[Flowable]:
    return [
        *_run_header(summary, layout),
        *_summary_section(summary, layout),
        *_reconciliation_section(summary, layout),
        *_latency_section(summary, layout),
        PageBreak(),
        *_outcome_and_throughput_charts(summary, layout),
        PageBreak(),
        *_latency_histograms(summary, layout),
        PageBreak(),
        *_thread_section(summary, layout),
        *_reasons_section(summary, layout),
        PageBreak(),
        *_details_section(summary, layout),
    ]


def _run_header(summary: RunSummary, layout: _Layout) -> list[Flowable]:
    config, environment = summary.config, summary.environment
    if config.get("demo_data"):
        data = "the demo data set (fixed records; the seed and invalid ratio do not apply)"
    else:
        data = "records generated from the seed"
    databases = "<br/>".join(
        f"<b>{layout.text(alias)}</b>: {layout.text(described.get('engine', '?'))}, "
        f"{layout.text(described.get('location', '?'))}"
        for alias, described in summary.databases.items()
    )
    software = ", ".join(
        f"{label} {layout.text(environment[key])}"
        for label, key in (("Django", "django"), ("Python", "python"), ("SQLite", "sqlite"))
        if key in environment
    )
    if "platform" in environment:
        software += f" on {layout.text(environment['platform'])}"
    facts = [
        ("Run", layout.text(summary.run_id)),
        ("Started", layout.text(_started(summary))),
        ("Duration", f"{summary.duration_seconds:.2f} s"),
        ("Threads per model", layout.text(config.get("threads", "?"))),
        ("Records per model", layout.text(config.get("records", "?"))),
        ("Data", data),
        ("Seed", layout.text(config.get("seed") if config.get("seed") is not None else "none")),
        ("Invalid ratio", layout.text(config.get("invalid_ratio", "?"))),
        ("Fresh databases", "yes (emptied before the run)" if config.get("fresh") else "no"),
    ]
    if "batch_size" in config:  # runs saved before group commit existed have no such option
        batch_size = config["batch_size"]
        commits = (
            f"group commit, up to {layout.text(batch_size)} records per transaction"
            if batch_size
            else "one transaction per record"
        )
        facts.append(("Commits", commits))
    facts += [("Databases", databases), ("Software", software)]
    if summary.interrupted:
        facts.append(("Interrupted", "yes: the run stopped before every record got a verdict"))
    rows = [
        [
            layout.paragraph(f"<b>{label}</b>", layout.cell_style),
            layout.paragraph(value, layout.cell_style),
        ]
        for label, value in facts
    ]
    table = Table(rows, colWidths=[36 * mm, FRAME_WIDTH - 36 * mm])
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, GRID_GREY),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
            ]
        )
    )
    return [layout.paragraph(TITLE, layout.title), Spacer(1, 4), table]


def _verdict(summary: RunSummary) -> tuple[bool, str]:
    if summary.ok:
        return True, (
            "PASS: every valid record was committed and the rows counted in each database "
            "reconcile with 'inserted'."
        )
    problems = []
    if summary.interrupted:
        problems.append("the run was interrupted")
    if summary.failed:
        problems.append(f"{_count(summary.failed)} valid records failed to commit")
    if not summary.reconciled:
        problems.append("the rows counted in the databases do not reconcile with 'inserted'")
    return False, "FAIL: " + "; ".join(problems) + "."


def _summary_section(summary: RunSummary, layout: _Layout) -> list[Flowable]:
    header = [
        "Model",
        "Database",
        "Attempted",
        "Inserted",
        "Rejected",
        "Failed",
        "Valid\ncommitted",
        "Wall s",
        "Rows/s",
    ]
    rows = [
        [
            layout.cell(model.model),
            layout.cell(model.database),
            _count(model.attempted),
            _count(model.inserted),
            _count(model.rejected),
            _count(model.failed),
            _share(model.valid_committed_share),
            f"{model.wall_seconds:.2f}",
            f"{model.rows_per_second:,.0f}",
        ]
        for model in summary.models.values()
    ]
    widths = [24 * mm, 28 * mm] + [(FRAME_WIDTH - 52 * mm) / 7] * 7
    passed, verdict = _verdict(summary)
    color = "#2e7d32" if passed else "#c62828"
    return [
        layout.paragraph("Summary", layout.heading),
        layout.table(header, rows, widths, right_aligned_from=2),
        Spacer(1, 4),
        layout.paragraph(f'<font color="{color}"><b>{verdict}</b></font>'),
        layout.paragraph(
            f"The run took {summary.duration_seconds:.2f} s. 'Valid committed' is the share of "
            "records that passed validation and were committed; 'Wall s' runs from a model's "
            "first insert to its last, and 'Rows/s' is rows committed per second of it.",
            layout.note,
        ),
    ]


def _reconciliation_section(summary: RunSummary, layout: _Layout) -> list[Flowable]:
    header = ["Model", "Database", "Rows before", "Rows after", "Rows added", "Inserted", "Match"]
    # Bare integers: these are compared, digit for digit, with counts taken from the databases.
    rows = [
        [
            layout.cell(model.model),
            layout.cell(model.database),
            str(model.rows_before),
            str(model.rows_after),
            str(model.rows_added),
            str(model.inserted),
            "yes" if model.reconciled else "NO",
        ]
        for model in summary.models.values()
    ]
    mismatches = [
        ("BACKGROUND", (6, row), (6, row), FAILED_ROW)
        for row, model in enumerate(summary.models.values(), start=1)
        if not model.reconciled
    ]
    widths = [24 * mm, 28 * mm] + [(FRAME_WIDTH - 52 * mm) / 5] * 5
    return [
        layout.paragraph("Reconciliation", layout.heading),
        layout.table(header, rows, widths, right_aligned_from=2, extra_style=mismatches),
        layout.paragraph(
            "Rows counted in each database before and after the run: rows added = rows after - "
            "rows before, which must equal the records reported as inserted.",
            layout.note,
        ),
    ]


def _latency_section(summary: RunSummary, layout: _Layout) -> list[Flowable]:
    header = ["Model", "Count", "Min", "Mean", "p50", "p90", "p95", "p99", "p99.9", "Max"]
    rows = []
    for model in summary.models.values():
        latency = model.latency_ms
        rows.append(
            [
                layout.cell(model.model),
                _count(latency.count),
                *(
                    _ms(value)
                    for value in (
                        latency.min,
                        latency.mean,
                        latency.p50,
                        latency.p90,
                        latency.p95,
                        latency.p99,
                        latency.p99_9,
                        latency.max,
                    )
                ),
            ]
        )
    widths = [24 * mm] + [(FRAME_WIDTH - 24 * mm) / 9] * 9
    return [
        layout.paragraph("Latency per model (milliseconds)", layout.heading),
        layout.table(header, rows, widths, right_aligned_from=1),
        layout.paragraph(
            "Time to validate and insert one record, retries included. Percentiles are exact to "
            "within about 1% (log buckets); min, mean and max are exact.",
            layout.note,
        ),
    ]


# Charts


def _axis_title(x: float, y: float, text: str, font: str, vertical: bool = False) -> Group:
    """An axis title centred on (x, y); a vertical one reads bottom to top."""
    title = String(
        0, 0, text, fontName=font, fontSize=7.5, fillColor=TEXT_GREY, textAnchor="middle"
    )
    group = Group(title)
    group.translate(x, y)
    if vertical:
        group.rotate(90)
    return group


def _legend(x: float, y: float, pairs: list[tuple[colors.Color, str]], font: str) -> Legend:
    legend = Legend()
    legend.x, legend.y = x, y
    legend.colorNamePairs = pairs
    legend.fontName, legend.fontSize = font, 7.5
    legend.alignment = "right"
    legend.boxAnchor = "nw"
    legend.dx = legend.dy = 7
    legend.deltay = 10
    legend.columnMaximum = len(pairs)
    return legend


def _bar_chart(
    layout: _Layout,
    drawing: Drawing,
    series: list[list[float]],
    labels: list[str],
    plot: tuple[float, float, float, float],
) -> VerticalBarChart:
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = plot
    chart.data = series
    chart.categoryAxis.categoryNames = labels
    chart.categoryAxis.labels.fontName = layout.fonts.regular
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.labels.fontName = layout.fonts.regular
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.valueMin = 0
    if max((max(values, default=0) for values in series), default=0) <= 0:
        chart.valueAxis.valueMax = 1  # an all-zero axis has no scale to draw
    chart.valueAxis.visibleGrid = True
    chart.valueAxis.gridStrokeColor = colors.HexColor("#e0e0e0")
    chart.valueAxis.gridStrokeWidth = 0.4
    drawing.add(chart)
    return chart


def _outcome_and_throughput_charts(summary: RunSummary, layout: _Layout) -> list[Flowable]:
    models = list(summary.models.values())
    font = layout.fonts.regular
    outcomes = Drawing(FRAME_WIDTH, 200)
    chart = _bar_chart(
        layout,
        outcomes,
        [[getattr(model, outcome) for model in models] for outcome in OUTCOME_COLORS],
        [_model_title(model) for model in models],
        (45, 30, FRAME_WIDTH - 150, 160),
    )
    for index, color in enumerate(OUTCOME_COLORS.values()):
        chart.bars[index].fillColor = color
        chart.bars[index].strokeColor = None
    chart.barLabelFormat = "%d"
    chart.barLabels.fontName, chart.barLabels.fontSize = font, 7
    chart.barLabels.nudge = 6
    chart.groupSpacing = 12
    outcomes.add(_axis_title(12, 110, "records", font, vertical=True))
    outcomes.add(
        _legend(
            FRAME_WIDTH - 95,
            185,
            [(color, outcome) for outcome, color in OUTCOME_COLORS.items()],
            font,
        )
    )
    return [
        layout.paragraph("Charts", layout.heading),
        layout.paragraph("Outcomes per model", layout.subheading),
        outcomes,
        layout.paragraph("Throughput over the run", layout.subheading),
        _throughput_chart(models, layout),
    ]


def _throughput_chart(models: list[ModelSummary], layout: _Layout) -> Flowable:
    with_timeline = [model for model in models if model.timeline]
    if not any(any(model.timeline) for model in with_timeline):
        return layout.paragraph("No rows were committed, so there is no throughput to draw.")
    font = layout.fonts.regular
    interval = with_timeline[0].timeline_interval_seconds
    drawing = Drawing(FRAME_WIDTH, 230)
    plot = LinePlot()
    plot.x, plot.y, plot.width, plot.height = 50, 35, FRAME_WIDTH - 160, 180
    # Each point at the end of its interval: the rows committed by then in that interval.
    plot.data = [
        [
            ((index + 1) * model.timeline_interval_seconds, count)
            for index, count in enumerate(model.timeline)
        ]
        for model in with_timeline
    ]
    for index, _model in enumerate(with_timeline):
        line = plot.lines[index]
        line.strokeColor = MODEL_COLORS[index % len(MODEL_COLORS)]
        line.strokeWidth = 1.2
        line.symbol = makeMarker("FilledCircle", size=2.5)
        line.symbol.fillColor = line.symbol.strokeColor = line.strokeColor
    for axis in (plot.xValueAxis, plot.yValueAxis):
        axis.labels.fontName, axis.labels.fontSize = font, 7
        axis.valueMin = 0
    plot.yValueAxis.visibleGrid = True
    plot.yValueAxis.gridStrokeColor = colors.HexColor("#e0e0e0")
    plot.yValueAxis.gridStrokeWidth = 0.4
    drawing.add(plot)
    drawing.add(_axis_title(50 + plot.width / 2, 8, "seconds since the run started", font))
    drawing.add(_axis_title(14, 125, f"rows committed per {interval:g} s", font, vertical=True))
    drawing.add(
        _legend(
            FRAME_WIDTH - 100,
            215,
            [
                (MODEL_COLORS[index % len(MODEL_COLORS)], model.model)
                for index, model in enumerate(with_timeline)
            ],
            font,
        )
    )
    return drawing


def _latency_histograms(summary: RunSummary, layout: _Layout) -> list[Flowable]:
    flowables: list[Flowable] = [
        layout.paragraph("Latency distribution", layout.heading),
        layout.paragraph(
            "Records per latency bucket, five buckets to a decade; each bar is labelled with its "
            "upper bound in milliseconds.",
            layout.note,
        ),
    ]
    font = layout.fonts.regular
    for index, model in enumerate(summary.models.values()):
        flowables.append(layout.paragraph(_model_title(model), layout.subheading))
        if not model.latency_histogram:
            flowables.append(layout.paragraph("No latencies recorded."))
            continue
        bounds = [bound for bound, _count in model.latency_histogram]
        # Every label on a short axis; every second or third on a long one, so none overlap.
        step = max(1, -(-len(bounds) // 24))
        labels = [_short_bound(bound) if i % step == 0 else "" for i, bound in enumerate(bounds)]
        drawing = Drawing(FRAME_WIDTH, 165)
        chart = _bar_chart(
            layout,
            drawing,
            [[count for _bound, count in model.latency_histogram]],
            labels,
            (50, 32, FRAME_WIDTH - 60, 118),
        )
        chart.bars[0].fillColor = MODEL_COLORS[index % len(MODEL_COLORS)]
        chart.bars[0].strokeColor = None
        chart.barSpacing = 1
        # Counts over the bars, so a tail of a few slow records is not an invisible sliver.
        chart.barLabelFormat = lambda count: f"{count:,.0f}" if count else ""
        chart.barLabels.fontName, chart.barLabels.fontSize = font, 5.5
        chart.barLabels.nudge = 4
        drawing.add(_axis_title(50 + chart.width / 2, 6, "latency, ms (bucket upper bound)", font))
        drawing.add(_axis_title(14, 95, "records", font, vertical=True))
        flowables.append(drawing)
    return flowables


def _sampled_threads(threads: list[ThreadSummary]) -> tuple[list[ThreadSummary], bool]:
    """All threads in worker order, or, for many, evenly spaced ranks by mean latency."""
    if len(threads) <= THREAD_BARS_PER_MODEL:
        return threads, False
    ranked = sorted(threads, key=lambda thread: thread.mean_latency_ms)
    last = len(ranked) - 1
    picks = sorted(
        {round(i * last / (THREAD_BARS_PER_MODEL - 1)) for i in range(THREAD_BARS_PER_MODEL)}
    )
    return [ranked[pick] for pick in picks], True


def _worker_label(model: ModelSummary, thread: str) -> str:
    """'user-worker-007' reads as 'worker-007' in the users table."""
    return thread.removeprefix(f"{model.model}-")


def _thread_section(summary: RunSummary, layout: _Layout) -> list[Flowable]:
    font = layout.fonts.regular
    flowables: list[Flowable] = [
        layout.paragraph("Threads", layout.heading),
        layout.paragraph(
            "Mean latency per worker thread: similar bars mean the threads got a fair share of "
            f"the database. Above {THREAD_BARS_PER_MODEL} threads the chart ranks the threads "
            f"from fastest to slowest and shows {THREAD_BARS_PER_MODEL} evenly spaced ranks, "
            "the fastest and the slowest included.",
            layout.note,
        ),
    ]
    for index, model in enumerate(summary.models.values()):
        if not model.threads:
            continue
        shown, sampled = _sampled_threads(model.threads)
        step = max(1, -(-len(shown) // 20))
        if sampled:
            labels = [""] * len(shown)
            labels[0], labels[-1] = "fastest", "slowest"
            caption = f"{len(shown)} of {len(model.threads):,} threads, by rank"
        else:
            labels = [
                _worker_label(model, thread.thread).rsplit("-", 1)[-1] if i % step == 0 else ""
                for i, thread in enumerate(shown)
            ]
            caption = "worker number"
        drawing = Drawing(FRAME_WIDTH, 125)
        chart = _bar_chart(
            layout,
            drawing,
            [[thread.mean_latency_ms for thread in shown]],
            labels,
            (50, 30, FRAME_WIDTH - 60, 80),
        )
        chart.bars[0].fillColor = MODEL_COLORS[index % len(MODEL_COLORS)]
        chart.bars[0].strokeColor = None
        chart.barSpacing = 1
        drawing.add(
            String(
                50,
                115,
                f"{_model_title(model)}: {len(model.threads):,} threads that handled records",
                fontName=font,
                fontSize=8,
            )
        )
        drawing.add(_axis_title(50 + chart.width / 2, 5, caption, font))
        drawing.add(_axis_title(14, 70, "mean ms", font, vertical=True))
        flowables.append(drawing)
    flowables.append(CondPageBreak(60 * mm))
    flowables.append(layout.paragraph("Thread analysis", layout.subheading))
    flowables.extend(_thread_table(summary, layout))
    return flowables


def _thread_table(summary: RunSummary, layout: _Layout) -> list[Flowable]:
    header = ["Model", "Thread", "Handled", "Inserted", "Rejected", "Failed", "Mean ms"]
    rows, note_rows = [], []
    for model in summary.models.values():
        threads = model.threads
        shown = threads
        if len(threads) > THREAD_ROWS_PER_MODEL:
            slowest_first = sorted(threads, key=lambda thread: thread.mean_latency_ms, reverse=True)
            shown, rest = (
                slowest_first[:THREAD_ROWS_PER_MODEL],
                slowest_first[THREAD_ROWS_PER_MODEL:],
            )
        rows.extend(
            [
                layout.cell(model.model),
                layout.cell(thread.thread),
                _count(thread.handled),
                _count(thread.inserted),
                _count(thread.rejected),
                _count(thread.failed),
                _ms(thread.mean_latency_ms),
            ]
            for thread in shown
        )
        if shown is not threads:
            note = (
                f"{layout.text(model.model)}: the {THREAD_ROWS_PER_MODEL} slowest of "
                f"{len(threads):,} threads are listed above; the other {len(rest):,} handled "
                f"{_range((t.handled for t in rest), _count)} records each, with a mean latency "
                f"of {_range((t.mean_latency_ms for t in rest), _ms)} ms."
            )
            rows.append([layout.paragraph(note, layout.note)] + [""] * (len(header) - 1))
            note_rows.append(len(rows))
    if not rows:
        return [layout.paragraph("No thread handled a record.")]
    widths = [24 * mm, 40 * mm] + [(FRAME_WIDTH - 64 * mm) / 5] * 5
    # A summary line spans the whole row, under the threads it summarises.
    spans = [
        style
        for row in note_rows
        for style in (
            ("SPAN", (0, row), (-1, row)),
            ("BACKGROUND", (0, row), (-1, row), colors.white),
        )
    ]
    return [layout.table(header, rows, widths, right_aligned_from=2, extra_style=spans)]


def _range(values: Iterable[float], format_value: Callable[[float], str]) -> str:
    values = list(values)
    low, high = min(values), max(values)
    return format_value(low) if low == high else f"{format_value(low)}-{format_value(high)}"


# Rejections, failures and records


def _reasons_section(summary: RunSummary, layout: _Layout) -> list[Flowable]:
    heading = layout.paragraph("Rejections and failures", layout.heading)
    if not any(model.reasons for model in summary.models.values()):
        return [
            heading,
            layout.paragraph(
                "No rejections and no failures: every record passed validation and was committed."
            ),
        ]
    header = ["Model", "Outcome", "Field", "Reason", "Records"]
    rows, extra_style, notes = [], [], []
    for model in summary.models.values():
        if not model.reasons:
            notes.append(f"{layout.text(model.model)}: no rejections and no failures.")
        for reason in model.reasons[:REASON_ROWS_PER_MODEL]:
            rows.append(
                [
                    layout.cell(model.model),
                    reason.status,
                    layout.cell(reason.field),
                    layout.cell(reason.message),
                    _count(reason.count),
                ]
            )
            if reason.status == "failed":
                extra_style.append(("BACKGROUND", (0, len(rows)), (-1, len(rows)), FAILED_ROW))
        hidden = len(model.reasons) - REASON_ROWS_PER_MODEL
        if hidden > 0:
            notes.append(
                f"{layout.text(model.model)}: {hidden:,} less frequent reasons are not listed "
                "(the JSON summary has them all)."
            )
    widths = [22 * mm, 18 * mm, 24 * mm, FRAME_WIDTH - 84 * mm, 20 * mm]
    return [
        heading,
        layout.paragraph(
            "Reasons grouped by model, most frequent first. A record rejected on two fields "
            "counts once under each.",
            layout.note,
        ),
        layout.table(header, rows, widths, right_aligned_from=4, extra_style=extra_style),
        *(layout.paragraph(note, layout.note) for note in notes),
    ]


def _details_section(summary: RunSummary, layout: _Layout) -> list[Flowable]:
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
        flowables.append(layout.paragraph(_model_title(model), layout.subheading))
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


# Relative widths of each model's value columns in the detailed table.
VALUE_COLUMN_WEIGHTS = {
    "user": {"name": 1.0, "email": 1.8},
    "product": {"name": 1.3, "price": 0.8},
    "order": {"user_id": 0.6, "product_id": 0.6, "quantity": 0.6},
}


def _records_table(model: ModelSummary, layout: _Layout) -> Table:
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
        if record.status != "inserted":
            shade = FAILED_ROW if record.status == "failed" else REJECTED_ROW
            highlights.append(("BACKGROUND", (0, number), (-1, number), shade))
    return layout.table(
        header, rows, widths, right_aligned_from=len(header) - 2, extra_style=highlights
    )


def _record_row(
    model: ModelSummary, record: RecordDetail, number: int, fields: list[str], layout: _Layout
) -> list:
    return [
        str(number),
        record.status,
        *(layout.cell(_clipped(record.values.get(name, ""))) for name in fields),
        layout.cell(record.reasons),
        layout.cell(_worker_label(model, record.thread)),
        _ms(record.latency_ms),
        "" if record.pk is None else str(record.pk),
    ]


def _clipped(value: str) -> str:
    """A 250-character email would fill a page; its reason already says how long it is."""
    if len(value) <= VALUE_CHARACTERS_SHOWN:
        return value
    return f"{value[: VALUE_CHARACTERS_SHOWN - 8]}… ({len(value):,} characters)"


# Every page: header, footer, "Page X of Y"


class _NumberedCanvas(Canvas):
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


def _decorate_page(
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
    canvas.drawRightString(PAGE_WIDTH - MARGIN, top, f"{_started(summary)} - {_run_shape(summary)}")
    canvas.line(MARGIN, top - 3, PAGE_WIDTH - MARGIN, top - 3)
    bottom = MARGIN
    canvas.line(MARGIN, bottom + 10, PAGE_WIDTH - MARGIN, bottom + 10)
    canvas.drawString(MARGIN, bottom, f"Run {summary.run_id}")
    canvas.drawRightString(PAGE_WIDTH - MARGIN, bottom, f"Page {page} of {pages}")
    canvas.restoreState()
