"""The latency histogram: bounded, mergeable, percentiles within one bucket (about 1 %)."""

import random

import pytest

from data_insertion.histogram import LatencyHistogram


def exact_percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * percent // 100))
    return ordered[int(rank) - 1]


@pytest.mark.parametrize("percent", [50, 90, 95, 99, 99.9])
def test_percentiles_are_within_one_percent_of_the_exact_ones(percent):
    generator = random.Random(4)
    values = [generator.lognormvariate(-6, 1.2) for _ in range(50_000)]
    histogram = LatencyHistogram()
    for value in values:
        histogram.record(value)
    assert histogram.percentile(percent) == pytest.approx(
        exact_percentile(values, percent), rel=0.011
    )


def test_min_max_mean_and_count_are_exact():
    histogram = LatencyHistogram()
    for value in (0.001, 0.002, 0.009):
        histogram.record(value)
    assert (histogram.count, histogram.minimum, histogram.maximum) == (3, 0.001, 0.009)
    assert histogram.mean == pytest.approx(0.004)
    assert histogram.percentile(100) == 0.009


def test_merging_equals_recording_everything_in_one():
    generator = random.Random(7)
    values = [generator.expovariate(200) for _ in range(20_000)]
    whole, first, second = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i, value in enumerate(values):
        whole.record(value)
        (first if i % 2 else second).record(value)
    first.merge(second)
    assert first.buckets == whole.buckets
    assert first.count == whole.count
    assert first.percentile(99) == whole.percentile(99)


def test_memory_is_bounded_by_buckets_not_samples():
    histogram = LatencyHistogram()
    generator = random.Random(1)
    for _ in range(200_000):
        histogram.record(generator.uniform(0.0001, 10))
    assert len(histogram.buckets) < 1_200  # 0.1 ms .. 10 s at ~1 % per bucket


def test_an_empty_histogram_reports_zeros():
    assert LatencyHistogram().percentile(99) == 0.0
