"""A terminal view for people without Grafana: scrape ``/metrics`` endpoints and print a summary table.

``stream-scorer status --url http://127.0.0.1:9464 --url http://127.0.0.1:9465`` scrapes the worker and
the label flow every few seconds; rates and latency quantiles come from the difference between two scrapes,
or come from a recording: ``status --record FILE`` appends a scrape every few seconds, and ``status --once
--since FILE`` shows each counter's rate over the time it was moving in the recording (events while they
were scored, labels while they were joined) and latency over the whole recording.
"""

from __future__ import annotations

import json
import math
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class Scrape:
    """Every sample of one or more scrapes, by (name, sorted labels), and when it was taken."""

    at: float
    samples: dict[Key, float]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels`` (NaN when there is none)."""
        wanted = set(labels.items())
        found = [v for (n, ls), v in self.samples.items() if n == name and wanted <= set(ls)]
        return math.fsum(found) if found else math.nan

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every sample of ``name`` with its labels."""
        return [(dict(ls), v) for (n, ls), v in self.samples.items() if n == name]

    def to_json(self) -> str:
        """A form :meth:`from_json` reads back: one line of a recording (``status --record``)."""
        return json.dumps(
            {"at": self.at, "samples": [[n, [list(kv) for kv in ls], v] for (n, ls), v in self.samples.items()]}
        )

    @staticmethod
    def from_json(text: str) -> Scrape:
        """Read :meth:`to_json`'s form; ``ValueError`` when it is not one."""
        try:
            d = json.loads(text)
            samples = {(str(n), tuple((str(k), str(v)) for k, v in ls)): float(x) for n, ls, x in d["samples"]}
            return Scrape(float(d["at"]), samples)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a saved scrape: {exc}") from exc


def parse(texts: Iterable[str], at: float) -> Scrape:
    """Parse Prometheus text exposition (several endpoints are merged; equal series add up). A text that is
    not exposition format (say, a web page at the wrong port) is skipped whole."""
    samples: dict[Key, float] = defaultdict(float)
    for text in texts:
        try:
            parsed = [
                ((s.name, tuple(sorted(s.labels.items()))), s.value)
                for family in text_string_to_metric_families(text)
                for s in family.samples
            ]
        except ValueError:
            continue
        for key, value in parsed:
            samples[key] += value
    return Scrape(at, dict(samples))


def scrape(urls: Sequence[str], at: float, timeout: float = 5.0) -> Scrape:
    """Fetch and parse ``<url>/metrics`` of each endpoint; an endpoint that does not answer is skipped."""
    texts = []
    for url in urls:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=timeout) as response:
                texts.append(response.read().decode())
        except (OSError, UnicodeDecodeError):
            continue
    return parse(texts, at)


def quantile(scrape: Scrape, name: str, q: float, before: Scrape | None = None, **labels: str) -> float:
    """A quantile from a histogram's cumulative buckets (linear inside the bucket, as Prometheus does); with
    ``before``, of the observations made between the two scrapes."""
    buckets: dict[float, float] = defaultdict(float)
    for sample_labels, value in scrape.series(name + "_bucket"):
        if set(labels.items()) <= set(sample_labels.items()):
            buckets[float(sample_labels["le"])] += value
    for sample_labels, value in before.series(name + "_bucket") if before is not None else ():
        if set(labels.items()) <= set(sample_labels.items()):
            buckets[float(sample_labels["le"])] -= value
    if not buckets or buckets.get(math.inf, 0.0) == 0:
        return math.nan
    bounds = sorted(buckets)
    total = buckets[math.inf]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if math.isinf(bound):
                return lower
            inside = buckets[bound] - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = bound, buckets[bound]
    return math.nan


def read_recording(text: str) -> list[Scrape]:
    """The scrapes of a recording (one :meth:`Scrape.to_json` per line); ``ValueError`` when there is none."""
    scrapes = [Scrape.from_json(line) for line in text.splitlines() if line.strip()]
    if not scrapes:
        raise ValueError("the recording holds no scrape")
    return scrapes


def active_rate(scrapes: Sequence[Scrape], name: str) -> float:
    """Per second, over the span in which ``name``'s total changed: from the scrape before its first change to
    the scrape of its last (a counter absent from the first scrapes counts from 0). 0 when it never changed;
    ``nan`` when no scrape has it.

    >>> s = [Scrape(t, {("c", ()): v}) for t, v in ((0, 0.0), (1, 0.0), (2, 10.0), (3, 20.0), (9, 20.0))]
    >>> active_rate(s, "c"), active_rate(s[:2], "c"), active_rate(s, "absent")
    (10.0, 0.0, nan)
    """
    found = [x.value(name) for x in scrapes]
    if all(math.isnan(v) for v in found):
        return math.nan
    values = [0.0 if math.isnan(v) else v for v in found]  # a labelled counter appears at its first count
    changed = [i for i in range(1, len(values)) if values[i] != values[i - 1]]
    if not changed:
        return 0.0
    first, last = changed[0] - 1, changed[-1]
    return (values[last] - values[first]) / (scrapes[last].at - scrapes[first].at)


def summary(now: Scrape, before: Scrape | None, recording: Sequence[Scrape] = ()) -> str:
    """The table: throughput, latency, freshness, lag, drift, model and label metrics. Rates and latency are
    those between ``before`` and ``now``, or with a ``recording``, each counter's over its active span and
    latency over the whole recording; every other figure is ``now``'s."""
    end = recording[-1] if recording else now
    before = recording[0] if recording else before
    seconds = (end.at - before.at) if before is not None else math.nan

    def rate(name: str) -> float:
        if recording:
            return active_rate(recording, name)
        if before is None or not seconds:
            return math.nan
        return (end.value(name) - before.value(name)) / seconds

    rows: list[tuple[str, str]] = []
    models = [ls for ls, v in now.series("stream_scorer_model_info") if v]
    for info in models:
        rows.append(("model", f"{info.get('name')} {info.get('version')} ({info.get('checksum', '')[:12]})"))
    rows.append(("events/s consumed", _number(rate("stream_scorer_events_consumed_total"), "{:,.0f}")))
    rows.append(("predictions/s", _number(rate("stream_scorer_predictions_produced_total"), "{:,.0f}")))
    rows.append(("dead letters/s", _number(rate("stream_scorer_dead_letters_total"), "{:,.1f}")))
    latency = [quantile(end, "stream_scorer_event_to_prediction_seconds", q, before) * 1000 for q in (0.5, 0.95, 0.99)]
    rows.append(("event->prediction p50/p95/p99 ms", " / ".join(_number(v, "{:.0f}") for v in latency)))
    lookups = now.value("stream_scorer_feature_group_lookups_total")
    for status in ("stale", "missing", "unavailable"):
        share = now.value("stream_scorer_feature_group_lookups_total", status=status) / lookups
        rows.append((f"feature lookups {status}", _number(100 * share, "{:.1f}%")))
    rows.append(("consumer lag (messages)", _number(now.value("stream_scorer_consumer_lag"), "{:,.0f}")))
    windows = sorted({ls.get("window", "") for ls, _ in now.series("stream_scorer_feature_psi")})
    for window in windows:  # the alerts read the 1h window
        psi = [
            (v, ls.get("feature", ""))
            for ls, v in now.series("stream_scorer_feature_psi")
            if ls.get("window") == window
        ]
        value, feature = max(((v, f) for v, f in psi if not math.isnan(v)), default=(math.nan, "-"))
        rows.append((f"max feature PSI {window} ({feature})", _number(value, "{:.3f}")))
    for labels, value in now.series("stream_scorer_prediction_psi"):
        rows.append((f"prediction PSI {labels.get('window', '')}", _number(value, "{:.3f}")))
    rows.append(("labels joined/s", _number(rate("stream_scorer_labels_joined_total"), "{:,.1f}")))
    lag = quantile(end, "stream_scorer_label_lag_seconds", 0.5, before, reference="event_time")
    rows.append(("label lag p50 (s)", _number(lag, "{:,.1f}")))
    rows.append(("label coverage", _number(now.value("stream_scorer_label_coverage"), "{:.3f}")))
    for labels, support in sorted(
        now.series("stream_scorer_model_window_labels"), key=lambda item: sorted(item[0].items())
    ):
        key = {k: labels[k] for k in ("model", "version", "window")}
        metrics = {m: now.value(f"stream_scorer_model_{m}", **key) for m in ("precision", "recall", "ece", "auc")}
        text = "  ".join(f"{m} {_number(v, '{:.3f}')}" for m, v in metrics.items())
        rows.append((f"{key['model']} {key['version']} [{key['window']}] n={support:.0f}", text))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _number(value: float, pattern: str) -> str:
    return "-" if value is None or math.isnan(value) else pattern.format(value)
