"""A Prometheus histogram for the hottest paths (one observation per store statement): a plain list
of bucket counts per label set, updated by the event loop's thread without a lock, exposed by a
collector at scrape time. prometheus-client's `Histogram` takes a lock and checks per observation,
which cost more than a small SQLite statement itself; this one costs a bisection and two additions.
Observations must come from one thread (the event loop's); a scrape from another reads a
consistent-enough snapshot (a count may trail its sum by one observation)."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


class LoopHistogram(Collector):
    def __init__(self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.bounds = tuple(buckets)
        self._series: dict[tuple[str, ...], list[float]] = {}
        """Per label values: one count per bucket (the last is +Inf, not cumulative), then the sum."""

    def observe(self, label_values: tuple[str, ...], value: float) -> None:
        series = self._series.get(label_values)
        if series is None:
            series = self._series[label_values] = [0.0] * (len(self.bounds) + 2)
        series[bisect.bisect_left(self.bounds, value)] += 1
        series[-1] += value

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for label_values, series in list(self._series.items()):
            family.add_metric(list(label_values), _cumulative(self.bounds, series[:-1]), sum_value=series[-1])
        yield family


def _cumulative(bounds: Sequence[float], counts: Sequence[float]) -> list[tuple[str, float]]:
    total, buckets = 0.0, []
    for bound, count in zip((*map(str, bounds), "+Inf"), counts, strict=True):
        total += count
        buckets.append((bound, total))
    return buckets
