"""Every number as the console shows it (counts with thousands separators in every table), and
the names the report gives runs and models."""

from datetime import datetime

from ..results import MODEL_TITLES
from ..summary import ModelSummary, RunSummary


def format_count(value: int) -> str:
    return f"{value:,}"


def format_ms(value: float) -> str:
    return f"{value:,.2f}"


def format_share(value: float) -> str:
    """A percentage that reads 100% only when it is exactly 100%."""
    percent = value * 100
    if percent < 100:
        percent = min(percent, 99.99)
    return f"{percent:.2f}%"


def format_valid_committed(model: ModelSummary) -> str:
    """The share of valid records committed, or "-" when no record passed validation: with nothing
    to commit, "100.00%" would claim a success that never happened."""
    if model.inserted + model.failed == 0:
        return "-"
    return format_share(model.valid_committed_share)


def format_started(summary: RunSummary) -> str:
    try:
        started = datetime.fromisoformat(summary.started_at)
    except ValueError:
        return summary.started_at
    zone = started.tzname() or ""
    return f"{started:%Y-%m-%d %H:%M:%S} {zone}".strip()


def format_setting(value: object) -> str:
    """A run option as the report shows it: a count with separators, anything else as it is."""
    if isinstance(value, int) and not isinstance(value, bool):
        return format_count(value)
    return str(value)


def run_shape(summary: RunSummary) -> str:
    config = summary.config
    threads = format_setting(config.get("threads", "?"))
    records = format_setting(config.get("records", "?"))
    return f"{threads} threads and {records} records per model"


def short_bound(milliseconds: float) -> str:
    """Two significant digits, thousands as "k": 0.0016, 0.25, 6.3, 40, 160, 1.6k, 25k."""
    rounded = float(f"{milliseconds:.2g}")
    if rounded >= 1000:
        return f"{rounded / 1000:g}k"
    return f"{rounded:g}"


def model_title(model: ModelSummary) -> str:
    return f"{MODEL_TITLES.get(model.model, model.model)} ({model.database})"
