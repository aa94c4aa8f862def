"""The rolling quality metrics exported at scrape time through a Prometheus Collector.

Every gauge is labelled ``model``, ``version`` and ``window``; ``precision_at_k`` adds ``k`` (percent,
e.g. "1") and the reliability gauges add ``bin`` ("0" for [0, 0.1) ...). An undefined metric (an empty
window, no predicted positive...) is exported as NaN, next to its support, ``..._window_labels``.

>>> from prometheus_client import CollectorRegistry
>>> from stream_scorer.labels.quality import RollingQuality, WindowSpec
>>> quality, registry = RollingQuality([WindowSpec("1h", seconds=3600)], clock=lambda: 0.0), CollectorRegistry()
>>> _ = QualityCollector(quality, registry=registry)
>>> quality.observe("a", "fraud", "3", 0.9, True, 1, 0.0)
>>> quality.observe("b", "fraud", "3", 0.2, False, 0, 0.0)
>>> registry.get_sample_value("stream_scorer_model_auc", {"model": "fraud", "version": "3", "window": "1h"})
1.0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from stream_scorer.labels.aggregates import WindowMetrics

LABELS = ("model", "version", "window")
_PREFIX = "stream_scorer_model_"
# name suffix, help, read from a WindowMetrics: one sample per (model, version, window).
_GAUGES: tuple[tuple[str, str, Callable[[WindowMetrics], float]], ...] = (
    ("precision", "Precision at the model's decision threshold over the window.", lambda m: m.precision),
    ("recall", "Recall at the model's decision threshold over the window.", lambda m: m.recall),
    ("f1", "F1 at the model's decision threshold over the window.", lambda m: m.f1),
    ("false_positive_rate", "False positives / negatives over the window.", lambda m: m.false_positive_rate),
    ("false_negative_rate", "False negatives / positives over the window.", lambda m: m.false_negative_rate),
    ("positive_rate", "Share of labels that are positive over the window.", lambda m: m.positive_rate),
    ("log_loss", "Mean log loss over the window (scores clipped to [1e-15, 1 - 1e-15]).", lambda m: m.log_loss),
    ("brier", "Brier score (mean squared error of the score) over the window.", lambda m: m.brier),
    ("ece", "Expected calibration error over the reliability bins of the window.", lambda m: m.ece),
    ("auc", "ROC AUC over the window, from fine score histograms.", lambda m: m.auc),
    ("auc_error_bound", "Bound on |auc - exact AUC| due to the histograms.", lambda m: m.auc_error_bound),
    ("window_labels", "Labels in the window: the support of every quality metric.", lambda m: m.n),
    ("window_positives", "Positive labels in the window: the support of recall.", lambda m: m.positives),
    (
        "window_flagged",
        "Labelled predictions at or above the threshold: the support of precision.",
        lambda m: m.tp + m.fp,
    ),
)


class QualitySnapshot(Protocol):
    """What the collector reads (see :class:`stream_scorer.labels.quality.RollingQuality`)."""

    def snapshot(self) -> list[WindowMetrics]: ...


class QualityCollector(Collector):
    """Exports ``source.snapshot()`` as gauges on every scrape; registers itself in ``registry``."""

    def __init__(self, source: QualitySnapshot, *, registry: CollectorRegistry) -> None:
        self._source = source
        registry.register(self)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(_families().values())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = _families()
        for m in self._source.snapshot():
            series = [m.model, m.version, m.window]
            for suffix, _, read in _GAUGES:
                families[suffix].add_metric(series, float(read(m)))
            for k, value in m.precision_at_k:
                families["precision_at_k"].add_metric([*series, f"{k:g}"], value)
            for b, reliability_bin in enumerate(m.reliability):
                labels = [*series, str(b)]
                families["reliability_predicted"].add_metric(labels, reliability_bin.predicted)
                families["reliability_observed"].add_metric(labels, reliability_bin.observed)
                families["reliability_labels"].add_metric(labels, reliability_bin.count)
        return iter(families.values())


def _families() -> dict[str, GaugeMetricFamily]:
    families = {suffix: GaugeMetricFamily(_PREFIX + suffix, doc, labels=LABELS) for suffix, doc, _ in _GAUGES}
    families["precision_at_k"] = GaugeMetricFamily(
        _PREFIX + "precision_at_k", "Share of positives among the top k percent of scores.", labels=[*LABELS, "k"]
    )
    for suffix, doc in (
        ("reliability_predicted", "Mean score of the reliability bin (nan when empty)."),
        ("reliability_observed", "Share of positive labels in the reliability bin (nan when empty)."),
        ("reliability_labels", "Labels in the reliability bin."),
    ):
        families[suffix] = GaugeMetricFamily(_PREFIX + suffix, doc, labels=[*LABELS, "bin"])
    return families
