"""The console's summary lines: what a run spread over processes or workers adds to them."""

from data_insertion.console import summary_lines
from data_insertion.summary import ScaleOutSummary, SliceAttemptSummary
from tests.test_report import run_summary, spread_summary


def test_a_spread_run_lists_its_executors_and_its_redone_slices_after_the_table():
    lines = summary_lines(spread_summary())
    text = "\n".join(lines)
    start = lines.index("Spread over 3 processes in 3 slices:")
    assert lines[start - 2].startswith("order ")  # the per-model table's last row, then a gap
    assert lines[start + 1].split() == ["Executor", "Attempts", "Inserted", "Rows/s"]
    assert lines[start + 2].split() == ["host-a:101", "2", "9,000", "4,500"]
    assert lines[start + 4].split() == ["host-c:103", "1", "3,000", "2,000"]
    assert (
        "phase 1 slice 3 redone: attempt 1 on host-c:103 abandoned (its executor host-c:103 "
        "stopped beating for 10 s; after committing 5,720 records), "
        "attempt 2 on host-b:102 found 5,720 records committed and counted them once"
    ) in text
    assert text.count("redone") == 1


def test_a_slice_redone_for_want_of_an_executor_says_so():
    summary = spread_summary()
    summary.scale_out = ScaleOutSummary(
        transport="Celery workers",
        slices=8,
        attempts=[
            SliceAttemptSummary(2, 4, 1, "", "abandoned"),
            SliceAttemptSummary(2, 4, 2, "w1:7", "finished", inserted=1_250, wall_seconds=0.5),
        ],
    )
    text = "\n".join(summary_lines(summary))
    assert "Spread over Celery workers in 8 slices:" in text
    assert (
        "phase 2 slice 4 redone: attempt 1 was never taken by an executor, "
        "attempt 2 on w1:7 finished, 1,250 inserted"
    ) in text


def test_a_one_process_run_has_no_spread_section():
    text = "\n".join(summary_lines(run_summary()))
    assert "Spread over" not in text and "Executor" not in text and "redone" not in text
