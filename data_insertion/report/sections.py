"""The document's story, in order: the run's header, summary, reconciliation, rows per database
(sharded models, shards.py), latency, charts, processes and workers (spread runs, scaleout.py),
threads, rejections and failures, and the detailed records (details.py)."""

from collections.abc import Callable, Iterable

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, PageBreak, Spacer, Table, TableStyle

from ..results import Status
from ..summary import ModelSummary, RunSummary
from .cache import cache_section
from .charts import latency_histograms, outcome_and_throughput_charts, thread_charts
from .details import details_section
from .faults import faults_section
from .formatting import (
    format_count,
    format_ms,
    format_setting,
    format_started,
    format_valid_committed,
)
from .layout import (
    FAILED_ROW,
    FRAME_WIDTH,
    GRID_GREY,
    REASON_ROWS_PER_MODEL,
    THREAD_BARS_PER_MODEL,
    THREAD_ROWS_PER_MODEL,
    TITLE,
    Layout,
)
from .scaleout import executor_threads_section, scale_out_section, spread_fact
from .shards import shards_section


def story(summary: RunSummary, layout: Layout) -> list[Flowable]:
    return [
        *_run_header(summary, layout),
        *_summary_section(summary, layout),
        *_reconciliation_section(summary, layout),
        *shards_section(summary, layout),
        *cache_section(summary, layout),
        *_latency_section(summary, layout),
        PageBreak(),
        *outcome_and_throughput_charts(summary, layout),
        PageBreak(),
        *latency_histograms(summary, layout),
        PageBreak(),
        *scale_out_section(summary, layout),
        *_thread_section(summary, layout),
        *_reasons_section(summary, layout),
        *faults_section(summary, layout),
        PageBreak(),
        *details_section(summary, layout),
    ]


def _run_header(summary: RunSummary, layout: Layout) -> list[Flowable]:
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
        ("Started", layout.text(format_started(summary))),
        ("Duration", f"{summary.duration_seconds:.2f} s"),
        ("Threads per model", layout.text(format_setting(config.get("threads", "?")))),
        ("Records per model", layout.text(format_setting(config.get("records", "?")))),
        ("Data", data),
        ("Seed", layout.text(config.get("seed") if config.get("seed") is not None else "none")),
        ("Invalid ratio", layout.text(config.get("invalid_ratio", "?"))),
        ("Fresh databases", "yes (emptied before the run)" if config.get("fresh") else "no"),
    ]
    if summary.faults:
        facts.append(
            ("Faults", "<br/>".join(layout.text(fault.description) for fault in summary.faults))
        )
    if summary.scale_out:
        facts.append(("Spread over", layout.text(spread_fact(summary))))
    if "batch_size" in config:  # runs saved before group commit existed have no such option
        batch_size = config["batch_size"]
        commits = (
            f"group commit, up to {layout.text(format_setting(batch_size))} records per transaction"
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
                # The cells are paragraphs in their own fonts; this only keeps the table from
                # switching to ReportLab's default, Helvetica, which is never embedded.
                ("FONT", (0, 0), (-1, -1), layout.fonts.regular),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, GRID_GREY),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
            ]
        )
    )
    return [layout.paragraph(TITLE, layout.title), Spacer(1, 4), table]


def _summary_section(summary: RunSummary, layout: Layout) -> list[Flowable]:
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
    table = _model_table(
        summary,
        layout,
        header,
        lambda model: [
            format_count(model.attempted),
            format_count(model.inserted),
            format_count(model.rejected),
            format_count(model.failed),
            format_valid_committed(model),
            f"{model.wall_seconds:.2f}",
            f"{model.rows_per_second:,.0f}",
        ],
    )
    color = "#2e7d32" if summary.ok else "#c62828"
    return [
        layout.paragraph("Summary", layout.heading),
        table,
        Spacer(1, 4),
        layout.paragraph(f'<font color="{color}"><b>{layout.text(summary.verdict)}</b></font>'),
        layout.paragraph(
            f"The run took {summary.duration_seconds:.2f} s. 'Valid committed' is the share of "
            "records that passed validation and were committed; 'Wall s' runs from a model's "
            "first insert to its last, and 'Rows/s' is rows committed per second of it. A '-' "
            "under 'Valid committed': no record passed validation, so there was nothing to commit.",
            layout.note,
        ),
    ]


def _reconciliation_section(summary: RunSummary, layout: Layout) -> list[Flowable]:
    header = [
        "Model",
        "Database",
        "Rows before",
        "Rows after",
        "Rows added",
        "Inserted",
        "Found by key",
        "Match",
    ]
    mismatches = [
        ("BACKGROUND", (7, row), (7, row), FAILED_ROW)
        for row, model in enumerate(summary.models.values(), start=1)
        if not model.reconciled
    ]
    table = _model_table(
        summary,
        layout,
        header,
        lambda model: [
            format_count(model.rows_before),
            format_count(model.rows_after),
            format_count(model.rows_added),
            format_count(model.inserted),
            "-" if model.rows_found is None else format_count(model.rows_found),
            "yes" if model.reconciled else "NO",
        ],
        extra_style=mismatches,
    )
    return [
        layout.paragraph("Reconciliation", layout.heading),
        table,
        layout.paragraph(
            "Rows counted in each database before and after the run (rows added = rows after - "
            "rows before), and the run's inserted rows looked up by primary key afterwards: every "
            "one must be found. Rows added exceed 'inserted' only when another process wrote to "
            "the same tables during the run.",
            layout.note,
        ),
    ]


def _model_table(
    summary: RunSummary,
    layout: Layout,
    header: list[str],
    values: Callable[[ModelSummary], list[str]],
    extra_style: Iterable[tuple] = (),
) -> Table:
    """A row per model: its name and database, then its values, right-aligned in equal columns."""
    rows = [
        [layout.cell(model.model), layout.cell(model.database), *values(model)]
        for model in summary.models.values()
    ]
    columns = len(header) - 2
    widths = [24 * mm, 28 * mm] + [(FRAME_WIDTH - 52 * mm) / columns] * columns
    return layout.table(header, rows, widths, right_aligned_from=2, extra_style=extra_style)


def _latency_section(summary: RunSummary, layout: Layout) -> list[Flowable]:
    header = ["Model", "Count", "Min", "Mean", "p50", "p90", "p95", "p99", "p99.9", "Max"]
    rows = []
    for model in summary.models.values():
        latency = model.latency_ms
        rows.append(
            [
                layout.cell(model.model),
                format_count(latency.count),
                *(
                    format_ms(value)
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


def _thread_section(summary: RunSummary, layout: Layout) -> list[Flowable]:
    return [
        layout.paragraph("Threads", layout.heading),
        layout.paragraph(
            "Mean latency per worker thread: similar bars mean the threads got a fair share of "
            f"the database. Above {THREAD_BARS_PER_MODEL} threads the chart ranks the threads "
            f"from fastest to slowest and shows {THREAD_BARS_PER_MODEL} evenly spaced ranks, "
            "the fastest and the slowest included.",
            layout.introduction,
        ),
        *thread_charts(summary, layout),
        layout.paragraph("Thread analysis", layout.subheading),
        *_thread_table(summary, layout),
        *executor_threads_section(summary, layout),
    ]


def _thread_table(summary: RunSummary, layout: Layout) -> list[Flowable]:
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
                format_count(thread.handled),
                format_count(thread.inserted),
                format_count(thread.rejected),
                format_count(thread.failed),
                format_ms(thread.mean_latency_ms),
            ]
            for thread in shown
        )
        if shown is not threads:
            note = (
                f"{layout.text(model.model)}: the {THREAD_ROWS_PER_MODEL} slowest of "
                f"{len(threads):,} threads are listed above; the other {len(rest):,} handled "
                f"{_range((t.handled for t in rest), format_count)} records each, with a mean "
                f"latency of {_range((t.mean_latency_ms for t in rest), format_ms)} ms."
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


# Rejections and failures


def _reasons_section(summary: RunSummary, layout: Layout) -> list[Flowable]:
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
                    format_count(reason.count),
                ]
            )
            if reason.status == Status.FAILED:
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
            layout.introduction,
        ),
        layout.table(header, rows, widths, right_aligned_from=4, extra_style=extra_style),
        *(layout.paragraph(note, layout.note) for note in notes),
    ]
