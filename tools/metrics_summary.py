"""Print the worker's stage timings and counters from its /metrics endpoint (used by scripts/demo)."""

from __future__ import annotations

import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main(url: str) -> None:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    batches = samples.get(("stream_scorer_stage_duration_seconds_count", (("stage", "batch"),)), 0.0)
    events = samples.get(("stream_scorer_events_consumed_total", ()), 0.0)
    print(f"{'stage':10s} {'ms/batch':>9s} {'us/event':>9s}")
    for stage in ("poll", "decode", "enrich", "vectorize", "score", "encode", "produce", "pending", "commit", "batch"):
        total = samples.get(("stream_scorer_stage_duration_seconds_sum", (("stage", stage),)), 0.0)
        if batches and events:
            print(f"{stage:10s} {1000 * total / batches:9.3f} {1e6 * total / events:9.2f}")
    print(
        f"events {events:.0f} in {batches:.0f} batches (mean {events / max(batches, 1):.0f} per batch); "
        f"predictions {samples.get(('stream_scorer_predictions_produced_total', ()), 0.0):.0f}; "
        f"imputed {samples.get(('stream_scorer_predictions_imputed_total', ()), 0.0):.0f}"
    )


if __name__ == "__main__":
    main(sys.argv[1])
