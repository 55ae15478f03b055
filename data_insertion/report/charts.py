"""The charts, drawn with reportlab.graphics as vectors: outcomes, throughput, latency, threads."""

import math

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, Group, Rect, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import Flowable

from ..summary import (
    SLICE_PREFIX,
    ExecutorSummary,
    FaultSummary,
    ModelSummary,
    RunSummary,
    ThreadSummary,
)
from .formatting import format_count, model_title, short_bound
from .layout import (
    FAULT_LABEL,
    FAULT_SHADE,
    FRAME_WIDTH,
    MODEL_COLORS,
    OUTCOME_COLORS,
    TEXT_GREY,
    THREAD_BARS_PER_MODEL,
    Layout,
)

AXIS_LABEL_SIZE = 7
AXIS_LABEL_GAP = 4  # points between two category labels, so they read as two numbers


def outcome_and_throughput_charts(summary: RunSummary, layout: Layout) -> list[Flowable]:
    models = list(summary.models.values())
    font = layout.fonts.regular
    outcomes = _drawing(200, layout)
    chart = _bar_chart(
        layout,
        outcomes,
        [[getattr(model, outcome) for model in models] for outcome in OUTCOME_COLORS],
        [model_title(model) for model in models],
        (45, 30, FRAME_WIDTH - 150, 160),
    )
    for index, color in enumerate(OUTCOME_COLORS.values()):
        chart.bars[index].fillColor = color
        chart.bars[index].strokeColor = None
    chart.barLabelFormat = format_count
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
        _throughput_chart(models, layout, summary.faults),
    ]


def latency_histograms(summary: RunSummary, layout: Layout) -> list[Flowable]:
    flowables: list[Flowable] = [
        layout.paragraph("Latency distribution", layout.heading),
        layout.paragraph(
            "Records per latency bucket, five buckets to a decade; each bar is labelled with its "
            "upper bound in milliseconds.",
            layout.introduction,
        ),
    ]
    font = layout.fonts.regular
    for index, model in enumerate(summary.models.values()):
        flowables.append(layout.paragraph(model_title(model), layout.subheading))
        if not model.latency_histogram:
            flowables.append(layout.paragraph("No latencies recorded."))
            continue
        drawing = _drawing(165, layout)
        chart = _model_bar_chart(
            layout,
            drawing,
            [count for _bound, count in model.latency_histogram],
            [short_bound(bound) for bound, _count in model.latency_histogram],
            (50, 32, FRAME_WIDTH - 60, 118),
            index,
        )
        # Counts over the bars, so a tail of a few slow records is not an invisible sliver.
        chart.barLabelFormat = lambda count: f"{count:,.0f}" if count else ""
        chart.barLabels.fontName, chart.barLabels.fontSize = font, 5.5
        chart.barLabels.nudge = 4
        drawing.add(_axis_title(50 + chart.width / 2, 6, "latency, ms (bucket upper bound)", font))
        drawing.add(_axis_title(14, 95, "records", font, vertical=True))
        flowables.append(drawing)
    return flowables


def thread_charts(summary: RunSummary, layout: Layout) -> list[Flowable]:
    """Mean latency per worker thread, a chart for each model whose threads handled records."""
    font = layout.fonts.regular
    drawings: list[Flowable] = []
    for index, model in enumerate(summary.models.values()):
        if not model.threads:
            continue
        shown, sampled = _sampled_threads(model.threads)
        if sampled:
            labels = [""] * len(shown)
            labels[0], labels[-1] = "fastest", "slowest"
            caption = f"{len(shown)} of {len(model.threads):,} threads, by rank"
        else:
            labels = [_thread_label(thread.thread) for thread in shown]
            caption = f"the number that ends each thread's name ({shown[0].thread}, ...)"
            if labels[0] != shown[0].thread.rsplit("-", 1)[-1]:
                caption = f"each thread's slice and number ({shown[0].thread}, ...)"
        drawing = _drawing(125, layout)
        chart = _model_bar_chart(
            layout,
            drawing,
            [thread.mean_latency_ms for thread in shown],
            labels,
            (50, 30, FRAME_WIDTH - 60, 80),
            index,
        )
        drawing.add(
            String(
                50,
                115,
                f"{model_title(model)}: {len(model.threads):,} threads that handled records",
                fontName=font,
                fontSize=8,
            )
        )
        drawing.add(_axis_title(50 + chart.width / 2, 5, caption, font))
        drawing.add(_axis_title(14, 70, "mean ms", font, vertical=True))
        drawings.append(drawing)
    return drawings


def executor_chart(executors: list[ExecutorSummary], layout: Layout) -> Flowable:
    """Rows committed per second by each process or worker of a spread run: even bars mean
    the slices were even and no executor was slower than the others."""
    font = layout.fonts.regular
    drawing = _drawing(140, layout)
    # Bars no wider than a thread's at a few executors: one bar across half the page reads as
    # a block, not a rate.
    width = min(FRAME_WIDTH - 60, max(120, 70 * len(executors)))
    chart = _bar_chart(
        layout,
        drawing,
        [[executor.rows_per_second for executor in executors]],
        [executor.executor for executor in executors],
        (50, 30, width, 95),
    )
    chart.bars[0].fillColor = _model_color(0)
    chart.bars[0].strokeColor = None
    chart.barLabelFormat = lambda rate: f"{rate:,.0f}"
    chart.barLabels.fontName, chart.barLabels.fontSize = font, 7
    chart.barLabels.nudge = 6
    drawing.add(_axis_title(50 + chart.width / 2, 6, "process or worker (host:pid)", font))
    drawing.add(_axis_title(14, 77, "rows/s", font, vertical=True))
    return drawing


def _thread_label(thread: str) -> str:
    """ "003" for "user-worker-003"; "s2-003" for a spread run's "s2-user-worker-003"."""
    match = SLICE_PREFIX.match(thread)
    number = thread.rsplit("-", 1)[-1]
    return f"{match.group(0)}{number}" if match else number


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


def _throughput_chart(
    models: list[ModelSummary], layout: Layout, faults: list[FaultSummary]
) -> Flowable:
    with_timeline = [model for model in models if model.timeline]
    if not any(any(model.timeline) for model in with_timeline):
        return layout.paragraph("No rows were committed, so there is no throughput to draw.")
    font = layout.fonts.regular
    interval = with_timeline[0].timeline_interval_seconds
    drawing = _drawing(230, layout)
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
        line.strokeColor = _model_color(index)
        line.strokeWidth = 1.2
        line.symbol = makeMarker("FilledCircle", size=2.5)
        line.symbol.fillColor = line.symbol.strokeColor = line.strokeColor
    for axis in (plot.xValueAxis, plot.yValueAxis):
        axis.labels.fontName, axis.labels.fontSize = font, 7
        axis.valueMin = 0
    plot.yValueAxis.visibleGrid = True
    plot.yValueAxis.gridStrokeColor = colors.HexColor("#e0e0e0")
    plot.yValueAxis.gridStrokeWidth = 0.4
    # A fixed time axis, so that each fault's window can be shaded where its seconds are.
    run_seconds = max(len(model.timeline) for model in with_timeline) * interval
    plot.xValueAxis.valueMax = run_seconds
    _shade_fault_windows(drawing, plot, run_seconds, faults, font)
    drawing.add(plot)
    drawing.add(_axis_title(50 + plot.width / 2, 8, "seconds since the run started", font))
    drawing.add(_axis_title(14, 125, f"rows committed per {interval:g} s", font, vertical=True))
    drawing.add(
        _legend(
            FRAME_WIDTH - 100,
            215,
            [(_model_color(index), model.model) for index, model in enumerate(with_timeline)],
            font,
        )
    )
    return drawing


def _shade_fault_windows(
    drawing: Drawing, plot: LinePlot, run_seconds: float, faults: list[FaultSummary], font: str
) -> None:
    """A band behind the lines for each fault that held for part of the run, labelled with
    its database and kind: a reader sees one model's line drop while the others go on."""
    held = [f for f in faults if f.end_seconds is not None and f.applied_at is not None]
    for number, fault in enumerate(held):
        start = min(fault.start_seconds, run_seconds)
        end = min(fault.end_seconds, run_seconds)
        if end <= start:
            continue
        left = plot.x + plot.width * start / run_seconds
        width = plot.width * (end - start) / run_seconds
        drawing.add(Rect(left, plot.y, width, plot.height, fillColor=FAULT_SHADE, strokeColor=None))
        drawing.add(
            String(
                left + 2,
                plot.y + plot.height - 9 - 9 * number,
                f"{fault.alias} {fault.kind}",
                fontName=font,
                fontSize=7,
                fillColor=FAULT_LABEL,
            )
        )


def _drawing(height: float, layout: Layout) -> Drawing:
    """A frame-wide drawing that starts in the report's font: ReportLab's default, Helvetica, is
    never embedded."""
    drawing = Drawing(FRAME_WIDTH, height)
    drawing.initialFontName = layout.fonts.regular
    return drawing


def _model_color(index: int) -> colors.Color:
    """The colour of the index-th model, the same in every chart."""
    return MODEL_COLORS[index % len(MODEL_COLORS)]


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


def _model_bar_chart(
    layout: Layout,
    drawing: Drawing,
    values: list[float],
    labels: list[str],
    plot: tuple[float, float, float, float],
    model_index: int,
) -> VerticalBarChart:
    """One series of thin bars in the model's colour."""
    chart = _bar_chart(layout, drawing, [values], labels, plot)
    chart.bars[0].fillColor = _model_color(model_index)
    chart.bars[0].strokeColor = None
    chart.barSpacing = 1
    return chart


def _bar_chart(
    layout: Layout,
    drawing: Drawing,
    series: list[list[float]],
    labels: list[str],
    plot: tuple[float, float, float, float],
) -> VerticalBarChart:
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = plot
    chart.data = series
    chart.categoryAxis.labels.fontName = layout.fonts.regular
    chart.categoryAxis.labels.fontSize = AXIS_LABEL_SIZE
    chart.categoryAxis.categoryNames = _thinned_labels(
        labels, chart.width / max(1, len(labels)), layout.fonts.regular
    )
    chart.valueAxis.labels.fontName = layout.fonts.regular
    chart.valueAxis.labels.fontSize = AXIS_LABEL_SIZE
    chart.valueAxis.valueMin = 0
    if max((max(values, default=0) for values in series), default=0) <= 0:
        chart.valueAxis.valueMax = 1  # an all-zero axis has no scale to draw
    chart.valueAxis.visibleGrid = True
    chart.valueAxis.gridStrokeColor = colors.HexColor("#e0e0e0")
    chart.valueAxis.gridStrokeWidth = 0.4
    drawing.add(chart)
    return chart


def _thinned_labels(labels: list[str], slot_width: float, font: str) -> list[str]:
    """The labels, with as many blanked as it takes to keep a gap between any two still shown.
    Each is centred under its bar, so shown labels must be as many slots apart as the widest needs
    (measured, not guessed from the count: "0.0016" needs three times the room of "4")."""
    widest = max((stringWidth(label, font, AXIS_LABEL_SIZE) for label in labels), default=0)
    step = max(1, math.ceil((widest + AXIS_LABEL_GAP) / slot_width))
    thinned, last_shown = [], -step
    for index, label in enumerate(labels):
        if label and index - last_shown >= step:
            thinned.append(label)
            last_shown = index
        else:
            thinned.append("")
    return thinned
