"""What a scored batch tells the worker's metrics: freshness per group, imputation, implausible records."""

from __future__ import annotations

import numpy as np

from stream_scorer.monitoring.metrics import ScorerMetrics
from stream_scorer.pipeline.scorer import ScoredBatch, status_counts


def observe_scored(metrics: ScorerMetrics, scored: ScoredBatch) -> None:
    """Count one scored batch into ``metrics`` (called for every batch, before its commit)."""
    for name, counts in status_counts(scored).items():
        malformed = int(np.count_nonzero(scored.group_values[name].malformed))
        metrics.observe_freshness(name, counts, scored.freshness[name].age_ms, malformed)
    for name, (future, out_of_range) in scored.implausible.items():
        if future or out_of_range:
            metrics.feature_implausible.labels(name, "future_time").inc(future)
            metrics.feature_implausible.labels(name, "out_of_range").inc(out_of_range)
    metrics.predictions_imputed.inc(int(np.count_nonzero(scored.imputed)))
