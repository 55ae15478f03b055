"""Every number as the console shows it, or as a bare integer where a reader (or a checker)
compares it with a count taken from a database; and the names the report gives runs and models."""

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


def format_started(summary: RunSummary) -> str:
    try:
        started = datetime.fromisoformat(summary.started_at)
    except ValueError:
        return summary.started_at
    zone = started.tzname() or ""
    return f"{started:%Y-%m-%d %H:%M:%S} {zone}".strip()


def run_shape(summary: RunSummary) -> str:
    config = summary.config
    return (
        f"{config.get('threads', '?')} threads and {config.get('records', '?')} records per model"
    )


def short_bound(milliseconds: float) -> str:
    return f"{milliseconds:.2g}" if milliseconds < 10 else f"{milliseconds:,.0f}"


def model_title(model: ModelSummary) -> str:
    return f"{MODEL_TITLES.get(model.model, model.model)} ({model.database})"


def worker_label(model: ModelSummary, thread: str) -> str:
    """'user-worker-007' reads as 'worker-007' in the users table."""
    return thread.removeprefix(f"{model.model}-")
