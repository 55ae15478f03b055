"""The PDF report, read back with pypdf: what a reviewer would look for, as text.

Most tests render summaries built here, without a database; the end-to-end ones (the command,
the rows counted in each database) are in test_generate_pdf_report_command.py.
"""

import re
import shutil
import subprocess
from io import BytesIO

import pytest
from pypdf import PdfReader
from reportlab import rl_config
from reportlab.pdfbase.pdfmetrics import stringWidth

from data_insertion import report
from data_insertion.report import render_pdf, render_report
from data_insertion.results import NO_NAME, Status
from data_insertion.summary import (
    INSERTED_RECORDS_KEPT,
    PROBLEM_RECORDS_KEPT,
    DatabaseRows,
    ExecutorSummary,
    LatencySummary,
    ModelSummary,
    ReasonCount,
    RecordDetail,
    RunSummary,
    ScaleOutSummary,
    SliceAttemptSummary,
    ThreadSummary,
)

NAMES = [
    "李雷 Wang",
    "山田 Tanaka",
    "김민수 Kim",
    "Дмитрий Ivanova",
    "Ελένη Papadopoulos",
    "Zoë Müller",
    'Robert"); DROP TABLE users;--',
    "さくら Tanaka",
    "Fish & <Chips>",
]
DATABASES = {"user": "users_db", "product": "products_db", "order": "orders_db"}


def record_values(model: str, index: int) -> dict[str, str]:
    if model == "user":
        return {"name": NAMES[index % len(NAMES)], "email": f"user{index}@example.com"}
    if model == "product":
        return {"name": f"Laptop {index}", "price": "1299.99"}
    return {"user_id": str(index + 1), "product_id": str(index + 2), "quantity": "3"}


def model_summary(
    model: str, *, threads: int, inserted: int, rejected: int, rows_before: int = 0
) -> ModelSummary:
    """A model's summary: records kept as summary.py keeps them, counts that add up."""
    kept_problems = min(rejected, PROBLEM_RECORDS_KEPT)
    kept_inserted = min(inserted, INSERTED_RECORDS_KEPT)
    records = [
        RecordDetail(
            status=Status.REJECTED if index < kept_problems else Status.INSERTED,
            values=record_values(model, index),
            reasons="name: This field cannot be blank." if index < kept_problems else "",
            thread=f"{model}-worker-{index % threads + 1:03d}",
            latency_ms=1.5,
            pk=None if index < kept_problems else index + 1,
        )
        for index in range(kept_problems + kept_inserted)
    ]
    attempted = inserted + rejected
    per_thread = attempted // threads
    return ModelSummary(
        model=model,
        database=DATABASES[model],
        attempted=attempted,
        inserted=inserted,
        rejected=rejected,
        failed=0,
        wall_seconds=2.5,
        rows_per_second=round(inserted / 2.5, 1),
        latency_ms=LatencySummary(attempted, 0.2, 1.8, 1.4, 3.1, 4.2, 9.7, 21.3, 40.0),
        rows_before=rows_before,
        rows_after=rows_before + inserted,
        latency_histogram=[[round(10 ** (k / 5), 3), 40 - 3 * abs(k - 2)] for k in range(-4, 9)],
        timeline=[inserted // 50 + (index < inserted % 50) for index in range(50)],
        timeline_interval_seconds=0.05,
        threads=[
            ThreadSummary(
                thread=f"{model}-worker-{number:03d}",
                handled=per_thread,
                inserted=per_thread,
                rejected=0,
                failed=0,
                mean_latency_ms=1 + number / threads,
            )
            for number in range(1, threads + 1)
        ],
        reasons=(
            [ReasonCount(Status.REJECTED, "name", "This field cannot be blank.", rejected)]
            if rejected
            else []
        ),
        records=records,
        records_omitted=attempted - len(records),
    )


def run_summary(*, threads: int = 4, inserted: int = 9, rejected: int = 3) -> RunSummary:
    return RunSummary(
        run_id="0123456789ab",
        started_at="2025-05-04T12:30:00+00:00",
        duration_seconds=2.75,
        config={
            "threads": threads,
            "records": inserted + rejected,
            "seed": 7,
            "invalid_ratio": 0.25,
            "fresh": False,
            "demo_data": False,
        },
        environment={"python": "3.12.3", "django": "5.2.8", "sqlite": "3.45.1"},
        databases={
            alias: {"engine": "sqlite", "location": f"/data/{alias.removesuffix('_db')}.db"}
            for alias in DATABASES.values()
        },
        models={
            model: model_summary(
                model, threads=threads, inserted=inserted, rejected=rejected, rows_before=index
            )
            for index, model in enumerate(DATABASES)
        },
    )


def spread_summary() -> RunSummary:
    """A run spread over 3 processes in 3 slices, 2 threads per model in each: slice 3 of phase 1
    was redone after its first executor stopped, and its second found 5,720 records committed."""
    summary = run_summary(threads=6, inserted=9_000, rejected=0)
    summary.config.update(threads=2, processes=3, celery=False, slices=None)
    for model in summary.models.values():
        for index, thread in enumerate(model.threads):
            slice_number, number = divmod(index, 2)
            thread.thread = f"s{slice_number + 1}-{model.model}-worker-{number + 1:03d}"
    attempt = SliceAttemptSummary
    summary.scale_out = ScaleOutSummary(
        transport="processes",
        slices=3,
        executors=[
            ExecutorSummary("host-a:101", 2, 9_000, 2.0, 4_500.0),
            ExecutorSummary("host-b:102", 3, 15_000, 4.0, 3_750.0),
            ExecutorSummary("host-c:103", 1, 3_000, 1.5, 2_000.0),
        ],
        attempts=[
            attempt(1, 1, 1, "host-a:101", "finished", 6_000, 0, 1.0),
            attempt(1, 2, 1, "host-b:102", "finished", 6_000, 0, 1.5),
            attempt(
                1,
                3,
                1,
                "host-c:103",
                "abandoned",
                5_720,
                0,
                0.0,
                reason="its executor host-c:103 stopped beating for 10 s",
            ),
            attempt(1, 3, 2, "host-b:102", "finished", 6_000, 5_720, 1.5),
            attempt(2, 1, 1, "host-b:102", "finished", 3_000, 0, 1.0),
            attempt(2, 2, 1, "host-c:103", "finished", 3_000, 0, 1.5),
            attempt(2, 3, 1, "host-a:101", "finished", 3_000, 0, 1.0),
        ],
    )
    return summary


def pdf_text(pdf: bytes) -> str:
    """All pages' text with runs of whitespace as one space (table cells wrap lines)."""
    reader = PdfReader(BytesIO(pdf))
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


def page_texts(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(BytesIO(pdf)).pages]


def page_fonts(pdf: bytes) -> list[dict]:
    """Every font dictionary the pages use."""
    return [
        font.get_object()
        for page in PdfReader(BytesIO(pdf)).pages
        for font in page["/Resources"]["/Font"].values()
    ]


def font_families(pdf: bytes) -> set[str]:
    """The fonts' family names: "DejaVuSans" for "AAAAAA+DejaVuSans-Bold"."""
    return {
        str(font["/BaseFont"]).lstrip("/").split("+")[-1].split("-")[0] for font in page_fonts(pdf)
    }


def text_runs(pdf: bytes, page_number: int, font_size: float) -> list[tuple[str, float, float]]:
    """(text, x, y) of every string drawn at that size on that page, x being its left edge."""
    runs = []

    def visit(text, matrix, text_matrix, font, size):
        if text.strip() and size == font_size:
            x, y = text_matrix[4], text_matrix[5]
            runs.append(
                (
                    text.strip(),
                    x * matrix[0] + y * matrix[2] + matrix[4],
                    x * matrix[1] + y * matrix[3] + matrix[5],
                )
            )

    PdfReader(BytesIO(pdf)).pages[page_number - 1].extract_text(visitor_text=visit)
    return runs


def test_metadata_names_the_report_and_the_run():
    reader = PdfReader(BytesIO(render_pdf(run_summary())))
    metadata = reader.metadata
    assert metadata.title == report.TITLE
    assert metadata.author == report.AUTHOR
    assert "0123456789ab" in metadata.subject
    assert "4 threads" in metadata.subject
    assert metadata.creation_date is not None


def test_every_page_has_the_title_the_run_id_and_page_x_of_y():
    rendered = render_report(run_summary())
    pages = page_texts(rendered.pdf)
    assert len(pages) == rendered.pages >= 3
    for number, text in enumerate(pages, start=1):
        assert report.TITLE in text
        assert "Run 0123456789ab" in text
        assert f"Page {number} of {len(pages)}" in text


def test_sections_and_latency_headings_are_present():
    text = pdf_text(render_pdf(run_summary()))
    for heading in (
        "Summary",
        "Reconciliation",
        "Latency per model (milliseconds)",
        "Charts",
        "Outcomes per model",
        "Throughput over the run",
        "Latency distribution",
        "Threads",
        "Thread analysis",
        "Rejections and failures",
        "Detailed results",
    ):
        assert heading in text
    assert re.search(r"p50 p90 p95 p99 p99\.9 Max", text)
    assert "This field cannot be blank." in text


def test_header_shows_configuration_databases_and_versions():
    text = pdf_text(render_pdf(run_summary(threads=20)))
    assert "Threads per model 20 " in text
    assert "Seed 7 " in text
    assert "Invalid ratio 0.25" in text
    assert "users_db: sqlite, /data/users.db" in text
    assert "Django 5.2.8, Python 3.12.3, SQLite 3.45.1" in text
    assert "2025-05-04 12:30:00 UTC" in text


def test_counts_have_thousands_separators_in_every_table():
    summary = run_summary(threads=2, inserted=2731, rejected=4)
    text = pdf_text(render_pdf(summary))
    for index, model in enumerate(summary.models.values()):
        # Reconciliation row: model, database, rows before/after/added, inserted, found, match
        row = f"{model.model} {model.database} {index} {2731 + index:,} 2,731 2,731 - yes"
        assert row in text
    assert "user users_db 2,735 2,731 4 0 100.00% 2.50 1,092" in text
    assert "user 2,735 0.20 1.80 1.40 3.10 4.20 9.70 21.30 40.00" in text
    assert "user user-worker-001 1,367 1,367 0 0" in text
    assert "Records per model 2,735 " in text
    assert "2 threads and 2,735 records per model" in text
    assert "PASS: every valid record was committed" in text


def test_names_in_any_script_are_extracted_as_text():
    text = pdf_text(render_pdf(run_summary(inserted=9, rejected=0)))
    for name in NAMES:
        assert name in text


def test_names_use_fonts_that_have_their_glyphs():
    pdf = render_pdf(run_summary(inserted=9, rejected=0))
    assert font_families(pdf) == {"DejaVuSans", report.CJK_FONT}


def test_every_font_is_embedded_so_any_viewer_draws_cjk_names():
    # Fonts left out of the file are drawn from the viewer's own, and poppler had none for
    # ReportLab's CID fonts: 李雷 and 김민수 were empty boxes.
    pdf = render_pdf(run_summary(inserted=9, rejected=0))
    fonts = page_fonts(pdf)
    assert fonts
    for font in fonts:
        assert "/FontFile2" in font["/FontDescriptor"], font["/BaseFont"]
    text = pdf_text(pdf)
    for name in ("李雷", "山田", "김민수", "さくら"):
        assert name in text


@pytest.mark.skipif(shutil.which("pdffonts") is None, reason="needs pdffonts (poppler-utils)")
def test_pdffonts_lists_every_font_as_embedded(tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(render_pdf(run_summary(inserted=9, rejected=0)))
    listing = subprocess.run(
        ["pdffonts", str(path)], capture_output=True, text=True, check=True
    ).stdout
    # name, type, encoding, emb, sub, uni, object id; the type may be two words.
    rows = [line.split() for line in listing.splitlines()[2:]]
    assert any(report.CJK_FONT in row[0] for row in rows)
    for row in rows:
        assert row[-5] == "yes", row


def test_without_dejavu_the_report_falls_back_to_fonts_it_embeds(monkeypatch):
    monkeypatch.setattr(report, "FONT_DIRECTORIES", ())
    pdf = render_pdf(run_summary(inserted=9, rejected=0))
    assert font_families(pdf) == {"BitstreamVeraSans", report.CJK_FONT}
    for font in page_fonts(pdf):
        assert "/FontFile2" in font["/FontDescriptor"]
    # Vera has Western European letters only: Cyrillic and Greek come from the CJK font.
    text = pdf_text(pdf)
    for name in ("李雷", "Дмитрий", "Ελένη", "Zoë"):
        assert name in text


def test_control_characters_are_shown_as_code_points():
    summary = run_summary()
    summary.models["user"].records[0].values["name"] = "Bell\x07"
    assert "Bell[U+0007]" in pdf_text(render_pdf(summary))


def test_overlong_values_are_clipped_with_their_length():
    summary = run_summary()
    summary.models["user"].records[0].values["email"] = "u" * 250 + "@example.com"
    # The cell wraps the clipped address wherever it likes: compare without spaces.
    text = pdf_text(render_pdf(summary)).replace(" ", "")
    assert f"{'u' * 32}…(262characters)" in text
    assert "u" * 33 not in text


def test_emails_wrap_before_the_at_sign_never_inside_a_word():
    summary = run_summary()
    values = summary.models["user"].records[0].values
    values["email"] = "user123+abcdef12@example.com"
    text = pdf_text(render_pdf(summary))
    # Too wide for its cell, the address wraps once, before the "@" (a line break reads as a space).
    assert "user123+abcdef12 @example.com" in text
    assert not re.search(r"e ?x ?a ?m ?p ?l ?e", text.replace("example.com", ""))


def test_an_empty_name_reads_no_name_as_on_the_console():
    summary = run_summary()
    summary.models["user"].records[0].values["name"] = ""
    summary.models["product"].records[0].values["name"] = ""
    text = pdf_text(render_pdf(summary))
    assert f"1 rejected {NO_NAME} user0@example.com" in text
    assert f"1 rejected {NO_NAME} 1299.99" in text


def test_threads_have_the_engines_name_in_every_section():
    text = pdf_text(render_pdf(run_summary()))
    # Thread analysis, then the detailed results: the same full name in both.
    assert "user user-worker-001 3 3 0 0 1.25" in text
    assert "name: This field cannot be blank. user-worker-001 1.50" in text
    assert not re.search(r"(?<!user-)(?<!product-)(?<!order-)worker-\d{3}", text)


def test_a_model_with_nothing_to_commit_shows_a_dash_not_100_percent():
    summary = run_summary()
    summary.models["order"] = model_summary("order", threads=4, inserted=0, rejected=0)
    text = pdf_text(render_pdf(summary))
    assert "order orders_db 0 0 0 0 - 2.50 0" in text
    assert "user users_db 12 9 3 0 100.00%" in text
    # The run's verdict names why it failed: the orders never got one.
    assert "FAIL: 12 records never got a verdict." in text


def test_histogram_axis_labels_never_overlap():
    summary = run_summary()
    # 41 buckets, 0.001 ms to 100 s: labels like "1,000" and "1,585" once ran together.
    for model in summary.models.values():
        model.latency_histogram = [[round(10 ** (k / 5), 3), 10] for k in range(-15, 26)]
    pdf = render_pdf(summary)
    histogram_page = next(
        number
        for number, text in enumerate(page_texts(pdf), start=1)
        if "Latency distribution" in text
    )
    labels = sorted(text_runs(pdf, histogram_page, font_size=7), key=lambda run: (-run[2], run[1]))
    font = report.register_fonts(report.FONT_DIRECTORIES).regular
    axes = {}
    for text, x, y in labels:
        axes.setdefault(round(y), []).append((x, x + stringWidth(text, font, 7), text))
    # A row of labels is a latency axis; the counts' axis has one label to a row.
    bound_axes = [row for row in axes.values() if len(row) >= 5]
    assert len(bound_axes) == 3  # one per model
    for row in bound_axes:
        assert len(row) >= 8
        assert all(len(text) <= 6 for *_, text in row)
        for (_, right, text), (left, _, next_text) in zip(row, row[1:], strict=False):
            assert right + 2 < left, f"{text!r} runs into {next_text!r}"


def test_a_heading_never_ends_a_page_without_what_it_heads():
    # More databases lengthen the run's header, so the latency heading walks down page 1 and over
    # to page 2; at some step it would have been the last line of page 1, its table on page 2.
    pages_with_heading = []
    for databases in range(16, 30, 2):
        summary = run_summary(inserted=2, rejected=1)
        for index in range(databases):
            summary.databases[f"shard_{index:02d}"] = {"engine": "sqlite", "location": "/data"}
        pages = [" ".join(text.split()) for text in page_texts(render_pdf(summary))]
        page = next(number for number, text in enumerate(pages) if "Latency per model" in text)
        assert "p50 p90 p95 p99 p99.9 Max user 3 " in pages[page]
        pages_with_heading.append(page)
    assert pages_with_heading[0] == 0 and pages_with_heading[-1] == 1


def test_a_run_without_rejections_says_so():
    summary = run_summary(inserted=12, rejected=0)
    text = pdf_text(render_pdf(summary))
    assert "No rejections and no failures" in text


def test_failures_and_mismatched_rows_make_the_verdict_fail():
    summary = run_summary()
    orders = summary.models["order"]
    orders.failed = 2
    orders.rows_after += 1
    orders.reasons.append(ReasonCount(Status.FAILED, "database", "database is locked", 2))
    text = pdf_text(render_pdf(summary))
    assert "FAIL: 2 valid records failed to commit; the rows counted" in text
    assert "failed database database is locked 2" in text
    assert re.search(r"order orders_db 2 12 10 9 - NO", text)


def test_a_run_with_no_records_renders():
    summary = run_summary(inserted=0, rejected=0)
    for model in summary.models.values():
        model.latency_histogram, model.timeline, model.threads = [], [], []
        model.latency_ms = LatencySummary(0, 0, 0, 0, 0, 0, 0, 0, 0)
    text = pdf_text(render_pdf(summary))
    assert "No rows were committed" in text
    assert "No latencies recorded." in text


def test_a_large_run_stays_bounded():
    # 1000 threads, and every record summary.py keeps: 1000 rejected and 200 inserted per model.
    summary = run_summary(threads=1000, inserted=18_000, rejected=2_000)
    rendered = render_report(summary)
    assert len(rendered.pdf) < 5 * 1024 * 1024
    pages = PdfReader(BytesIO(rendered.pdf)).pages
    assert len(pages) == rendered.pages
    # The first pages (summary, charts, threads) and the last one: extracting all 100 is slow.
    text = " ".join(" ".join(page.extract_text().split()) for page in [*pages[:8], pages[-1]])
    assert f"the {report.THREAD_ROWS_PER_MODEL} slowest of 1,000 threads are listed" in text
    assert "60 of 1,000 threads, by rank" in text
    assert "18,800 more records are not listed here" in text
    assert f"Page {rendered.pages} of {rendered.pages}" in text


def test_invariant_mode_makes_the_pdf_repeatable(monkeypatch):
    monkeypatch.setattr(rl_config, "invariant", 1)
    assert render_pdf(run_summary()) == render_pdf(run_summary())


def test_a_sharded_model_shows_rows_and_rate_per_database_and_its_skew():
    summary = run_summary(inserted=900, rejected=0)
    summary.models["user"].database_rows = [
        DatabaseRows("users_db_0", 500, 200.0),
        DatabaseRows("users_db_1", 400, 160.0),
    ]
    text = pdf_text(render_pdf(summary))
    assert "Rows per database" in text
    assert "user users_db_0 500 200 1.11" in text
    assert "user users_db_1 400 160 0.89" in text
    assert "user skew (largest / mean) 1.11" in text
    assert "products_db" not in text.split("Rows per database")[1].split("Latency")[0]


def test_a_run_with_every_model_in_one_database_has_no_rows_per_database_section():
    assert "Rows per database" not in pdf_text(render_pdf(run_summary()))


def test_a_spread_run_has_its_processes_attempts_and_threads_per_executor():
    text = pdf_text(render_pdf(spread_summary()))
    assert "Spread over 3 local processes, 3 slices, each slice with 2 threads per model" in text
    section = text.split("Processes and workers")[1].split("Threads Mean latency")[0]
    # Executor, the slices it finished (phase/slice), attempts, inserted, wall s, rows/s
    assert "host-a:101 1/1, 2/3 2 9,000 2.00 4,500" in section
    assert "host-b:102 1/2, 1/3, 2/1 3 15,000 4.00 3,750" in section
    # Phase 1 slice 3: abandoned on host-c, redone on host-b, which found what host-c committed.
    assert "1 (users, products) 3 1 host-c:103 abandoned 5,720 0 0.00" in section
    assert "attempt 1 abandoned: its executor host-c:103 stopped beating for 10 s" in section
    assert "1 (users, products) 3 2 host-b:102 finished 6,000 5,720 1.50" in section
    # The threads of slice 3 ran on host-b for users (phase 1) and on host-a for orders (phase 2).
    by_executor = text.split("Threads by process or worker")[1]
    assert "user host-b:102 4 6,000 6,000 0 0 1.75" in by_executor
    assert "user host-c:103" not in by_executor
    assert "order host-a:101 2 3,000 3,000 0 0" in by_executor
    assert "s3-user-worker-002" in text


def test_a_one_process_run_has_no_processes_and_workers_section():
    text = pdf_text(render_pdf(run_summary()))
    for absent in ("Processes and workers", "Spread over", "Threads by process or worker"):
        assert absent not in text
