"""A Prometheus histogram fed a whole numpy array at a time, exported through a Collector at scrape time.

``prometheus_client.Histogram.observe`` takes one value per call; per-event latencies and feature
ages would cost a Python call (and a lock) per event. Here a batch costs one ``np.searchsorted``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry


class BatchHistogram(Collector):
    """A labelled histogram whose ``observe_many`` takes an array of values.

    >>> registry = CollectorRegistry()
    >>> h = BatchHistogram("demo_seconds", "Demo.", buckets=(0.1, 1.0), labelnames=("stage",), registry=registry)
    >>> h.observe_many(np.array([0.05, 0.5, 5.0]), "decode")
    >>> registry.get_sample_value("demo_seconds_bucket", {"stage": "decode", "le": "1.0"})
    2.0
    >>> registry.get_sample_value("demo_seconds_count", {"stage": "decode"})
    3.0
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        *,
        buckets: Sequence[float],
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry,
    ) -> None:
        if list(buckets) != sorted(buckets) or len(set(buckets)) != len(buckets):
            raise ValueError(f"{name}: buckets must be strictly increasing")
        self.name = name
        self._documentation = documentation
        self._bounds = np.asarray(buckets, dtype=np.float64)
        self._labelnames = tuple(labelnames)
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], tuple[npt.NDArray[np.int64], list[float]]] = {}
        registry.register(self)

    def observe_many(self, values: npt.NDArray[np.floating] | npt.NDArray[np.integer], *labelvalues: str) -> None:
        """Add every value of ``values`` to the series named by ``labelvalues``."""
        if len(labelvalues) != len(self._labelnames):
            raise ValueError(f"{self.name} takes labels {self._labelnames}, got {labelvalues}")
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            return
        # Bucket i counts values <= bounds[i]; the last slot is +Inf.
        counts = np.bincount(np.searchsorted(self._bounds, values, side="left"), minlength=len(self._bounds) + 1)
        with self._lock:
            series = self._series.get(labelvalues)
            if series is None:
                series = self._series[labelvalues] = (np.zeros(len(self._bounds) + 1, np.int64), [0.0])
            series[0][:] += counts
            series[1][0] += float(values.sum())

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self._documentation, labels=self._labelnames)
        with self._lock:
            snapshot = [(labels, counts.copy(), total[0]) for labels, (counts, total) in self._series.items()]
        for labels, counts, total in snapshot:
            cumulative = np.cumsum(counts).astype(np.float64).tolist()
            edges = [_format(b) for b in self._bounds] + ["+Inf"]
            family.add_metric(list(labels), list(zip(edges, cumulative, strict=True)), total)
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self._documentation, labels=self._labelnames)


def _format(bound: float) -> str:
    return repr(float(bound))
