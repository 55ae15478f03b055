"""A latency histogram with bounded memory: log buckets about 1% wide, mergeable across threads.

Like HdrHistogram it keeps counts per bucket, not samples, so a million latencies cost a few
hundred integers; a percentile is exact to within one bucket (about 1%), and min, max and mean
are exact.
"""

import math
from collections.abc import Iterable

BUCKETS_PER_DOUBLING = 70  # 2 ** (1 / 70) - 1 = 0.99 %: the relative width of a bucket
_SCALE = BUCKETS_PER_DOUBLING / math.log(2)
_FLOOR_SECONDS = 1e-7  # 0.1 microsecond; anything faster lands in the first bucket


class LatencyHistogram:
    __slots__ = ("buckets", "count", "total", "minimum", "maximum")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = 0.0

    def record(self, seconds: float) -> None:
        index = int(math.log(max(seconds, _FLOOR_SECONDS) / _FLOOR_SECONDS) * _SCALE)
        self.buckets[index] = self.buckets.get(index, 0) + 1
        self.count += 1
        self.total += seconds
        if seconds < self.minimum:
            self.minimum = seconds
        if seconds > self.maximum:
            self.maximum = seconds

    def merge(self, other: "LatencyHistogram") -> None:
        for index, count in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + count
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    def since(self, earlier: "LatencyHistogram") -> "LatencyHistogram":
        """The latencies recorded after `earlier`, a copy of this histogram taken before. The
        interval's own minimum is unknown: its percentiles are bounded by the overall maximum."""
        interval = LatencyHistogram()
        for index, count in self.buckets.items():
            added = count - earlier.buckets.get(index, 0)
            if added:
                interval.buckets[index] = added
        interval.count = self.count - earlier.count
        interval.total = self.total - earlier.total
        interval.minimum = 0.0
        interval.maximum = self.maximum
        return interval

    def to_wire(self) -> dict:
        """A JSON form another process or machine adds up (from_wire, then merge)."""
        return {
            "buckets": [[index, count] for index, count in self.buckets.items()],
            "count": self.count,
            "total": self.total,
            "minimum": None if self.count == 0 else self.minimum,
            "maximum": self.maximum,
        }

    @classmethod
    def from_wire(cls, data: dict) -> "LatencyHistogram":
        histogram = cls()
        histogram.buckets = {index: count for index, count in data["buckets"]}
        histogram.count = data["count"]
        histogram.total = data["total"]
        histogram.minimum = math.inf if data["minimum"] is None else data["minimum"]
        histogram.maximum = data["maximum"]
        return histogram

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def percentile(self, percent: float) -> float:
        """The latency below which `percent` % of the recorded ones fall (nearest rank)."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(self.count * percent / 100))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                middle = _FLOOR_SECONDS * math.exp((index + 0.5) / _SCALE)
                return min(max(middle, self.minimum), self.maximum)
        return self.maximum

    def coarse(self, edges_seconds: Iterable[float]) -> list[int]:
        """Counts between consecutive `edges_seconds` (the last bin takes everything above)."""
        edges = list(edges_seconds)
        counts = [0] * len(edges)
        for index, count in self.buckets.items():
            lower = _FLOOR_SECONDS * math.exp(index / _SCALE)
            position = 0
            while position + 1 < len(edges) and lower >= edges[position + 1]:
                position += 1
            counts[position] += count
        return counts
