"""Comparing a candidate run with a baseline: rows/s and p50/p95/p99 per model, their changes,
and which of them got worse by more than the allowed share (a regression)."""

from dataclasses import dataclass

from ..summary import RunSummary

# (metric, label, higher is better)
METRICS = (
    ("rows_per_second", "rows/s", True),
    ("p50", "p50 ms", False),
    ("p95", "p95 ms", False),
    ("p99", "p99 ms", False),
)


@dataclass(frozen=True, slots=True)
class MetricComparison:
    model: str
    metric: str
    label: str
    baseline: float
    candidate: float
    # (candidate - baseline) / baseline; None when the baseline is 0
    change: float | None
    regression: bool

    @property
    def change_text(self) -> str:
        """The change as the console and the dashboard show it: "+12.5%", or "-" from 0."""
        return f"{self.change:+.1%}" if self.change is not None else "-"


def compare_summaries(
    baseline: RunSummary, candidate: RunSummary, max_regression: float
) -> list[MetricComparison]:
    """Every metric of every model both runs have; `max_regression` is a share (0.1 = 10 %)."""
    comparisons = []
    for model, base in baseline.models.items():
        other = candidate.models.get(model)
        if other is None:
            continue
        for metric, label, higher_is_better in METRICS:
            before = _metric(base, metric)
            after = _metric(other, metric)
            change = (after - before) / before if before else None
            worse = -change if higher_is_better and change is not None else change
            comparisons.append(
                MetricComparison(
                    model=model,
                    metric=metric,
                    label=label,
                    baseline=before,
                    candidate=after,
                    change=change,
                    regression=worse is not None and worse > max_regression,
                )
            )
    return comparisons


def _metric(model_summary, metric: str) -> float:
    if metric == "rows_per_second":
        return model_summary.rows_per_second
    return getattr(model_summary.latency_ms, metric)


def parse_share(text: str) -> float:
    """ "10%" or "10" -> 0.1: the share a metric may get worse by. Raises ValueError."""
    value = float(text.strip().removesuffix("%"))
    if not 0 <= value <= 1000:
        raise ValueError(f"{text!r} is outside 0%..1000%")
    return value / 100
