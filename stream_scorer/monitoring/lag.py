"""Consumer lag from librdkafka's statistics, the JSON that ``stats_cb`` receives every ``statistics.interval.ms``.

Per librdkafka's STATISTICS.md, ``topics.<topic>.partitions.<id>.consumer_lag`` is the high watermark
(the last stable offset under ``isolation.level=read_committed``) minus the group's committed offset:
the lag a group exporter would show. Three kinds of entry are left out:

- partition ``"-1"``, librdkafka's internal unassigned-partition entry;
- ``consumer_lag == -1``, lag not known yet (no committed offset or watermark fetched);
- ``desired == false``, a partition this consumer no longer owns: librdkafka keeps its last
  numbers after a rebalance, so exporting them would report a stale lag.

The callback must not raise into librdkafka, so a payload that is not the expected JSON gives ``{}``
from :func:`consumer_lag`, and :meth:`ConsumerLagGauge.update_json` returns ``False`` for it (the
caller counts it) without touching the gauge.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from prometheus_client import Gauge
from prometheus_client.registry import CollectorRegistry

LAG_METRIC = "stream_scorer_consumer_lag"
Lags = dict[tuple[str, int], int]


def consumer_lag(stats_json: str | bytes) -> Lags:
    """Lag in messages of every partition this consumer owns, keyed by (topic, partition); ``{}`` if unreadable.

    >>> consumer_lag('{"topics": {"tx": {"partitions": {"0": {"consumer_lag": 7}, "-1": {"consumer_lag": -1}}}}}')
    {('tx', 0): 7}
    >>> consumer_lag("not json")
    {}
    """
    lags = _parse(stats_json)
    return {} if lags is None else lags


class ConsumerLagGauge:
    """The gauge ``stream_scorer_consumer_lag{topic, partition}``, set from each statistics payload.

    Partitions missing from a payload (revoked in a rebalance, or lag unknown) are removed, so the
    endpoint only shows partitions this consumer currently owns.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._gauge = Gauge(
            LAG_METRIC,
            "Messages between the partition's high watermark and the group's committed offset (librdkafka stats).",
            ["topic", "partition"],
            registry=registry,
        )
        self._shown: set[tuple[str, int]] = set()

    def update(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Show exactly the partitions of ``lags``, with their lag."""
        for topic, partition in self._shown - lags.keys():
            self._gauge.remove(topic, str(partition))
        for (topic, partition), lag in lags.items():
            self._gauge.labels(topic, str(partition)).set(lag)
        self._shown = set(lags)

    def update_json(self, stats_json: str | bytes) -> bool:
        """:meth:`update` from a ``stats_cb`` payload; ``False`` (gauge untouched) when it cannot be read."""
        lags = _parse(stats_json)
        if lags is None:
            return False
        self.update(lags)
        return True


def _parse(stats_json: str | bytes) -> Lags | None:
    """The owned partitions' lags, or ``None`` when the payload is not a statistics object with topics."""
    try:
        stats = json.loads(stats_json)
    except (ValueError, TypeError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    topics = stats.get("topics") if isinstance(stats, dict) else None
    if not isinstance(topics, dict):
        return None
    lags: Lags = {}
    for topic, entry in topics.items():
        partitions = entry.get("partitions") if isinstance(entry, dict) else None
        for key, p in partitions.items() if isinstance(partitions, dict) else ():
            owned = _owned_lag(key, p)
            if owned is not None:
                lags[(topic, owned[0])] = owned[1]
    return lags


def _owned_lag(key: str, p: object) -> tuple[int, int] | None:
    """(partition, lag) of an assigned partition with a known lag, else ``None``."""
    if not isinstance(p, dict) or p.get("desired", True) is False:
        return None
    try:
        partition = int(key)
    except ValueError:
        return None
    lag = p.get("consumer_lag")
    if partition < 0 or isinstance(lag, bool) or not isinstance(lag, int) or lag < 0:
        return None
    return partition, lag
