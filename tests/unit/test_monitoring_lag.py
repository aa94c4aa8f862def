"""Consumer lag from librdkafka statistics: owned partitions only, malformed payloads counted, stale series removed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from stream_scorer.monitoring.lag import ConsumerLagGauge, consumer_lag


def _partition(p: int, *, desired: bool, lag: int, committed: int, hi: int) -> dict[str, Any]:
    return {
        "partition": p,
        "broker": 1 if p >= 0 else -1,
        "leader": 1 if p >= 0 else -1,
        "desired": desired,
        "unknown": False,
        "msgq_cnt": 0,
        "msgq_bytes": 0,
        "xmit_msgq_cnt": 0,
        "xmit_msgq_bytes": 0,
        "fetchq_cnt": 120 if desired else 0,
        "fetchq_size": 48213 if desired else 0,
        "fetch_state": "active" if desired else "none",
        "query_offset": -1001,
        "next_offset": committed + 500 if desired else -1001,
        "app_offset": committed + 380 if desired else -1001,
        "stored_offset": committed + 380 if desired else -1001,
        "stored_leader_epoch": -1,
        "commited_offset": committed,
        "committed_offset": committed,
        "committed_leader_epoch": 0,
        "eof_offset": -1001,
        "lo_offset": 0 if hi >= 0 else -1001,
        "hi_offset": hi,
        "ls_offset": hi,
        "consumer_lag": lag,
        "consumer_lag_stored": lag - 380 if lag >= 380 else lag,
        "leader_epoch": 0,
        "txmsgs": 0,
        "txbytes": 0,
        "rxmsgs": 91234,
        "rxbytes": 36120481,
        "msgs": 91234,
        "rx_ver_drops": 0,
        "msgs_inflight": 0,
        "next_ack_seq": 0,
        "next_err_seq": 0,
        "acked_msgid": 0,
    }


# Trimmed from a consumer's stats_cb payload: brokers' histograms cut, every partition field kept.
STATS: dict[str, Any] = {
    "name": "rdkafka#consumer-1",
    "client_id": "stream-scorer",
    "type": "consumer",
    "ts": 12830473120,
    "time": 1760000000,
    "age": 30001245,
    "replyq": 0,
    "msg_cnt": 0,
    "msg_size": 0,
    "msg_max": 100000,
    "msg_size_max": 1073741824,
    "simple_cnt": 0,
    "metadata_cache_cnt": 2,
    "brokers": {
        "localhost:9092/1": {
            "name": "localhost:9092/1",
            "nodeid": 1,
            "nodename": "localhost:9092",
            "source": "learned",
            "state": "UP",
            "stateage": 29810033,
            "outbuf_cnt": 0,
            "waitresp_cnt": 1,
            "tx": 6124,
            "rx": 6123,
            "rtt": {"min": 312, "max": 9031, "avg": 812, "p99": 4127, "cnt": 310},
            "toppars": {
                "transactions-0": {"topic": "transactions", "partition": 0},
                "transactions-2": {"topic": "transactions", "partition": 2},
            },
        }
    },
    "topics": {
        "transactions": {
            "topic": "transactions",
            "age": 29901,
            "metadata_age": 4011,
            "batchsize": {"min": 0, "max": 0, "avg": 0, "cnt": 0},
            "batchcnt": {"min": 0, "max": 0, "avg": 0, "cnt": 0},
            "partitions": {
                "0": _partition(0, desired=True, lag=1523, committed=90210, hi=91733),
                "1": _partition(1, desired=False, lag=880, committed=70001, hi=70881),  # revoked: stale
                "2": _partition(2, desired=True, lag=0, committed=88000, hi=88000),
                "3": _partition(3, desired=True, lag=-1, committed=-1001, hi=-1001),  # assigned, lag not known yet
                "-1": _partition(-1, desired=False, lag=-1, committed=-1001, hi=-1001),
            },
        },
        "labels": {
            "topic": "labels",
            "age": 29901,
            "metadata_age": 4011,
            "batchsize": {"min": 0, "max": 0, "avg": 0, "cnt": 0},
            "batchcnt": {"min": 0, "max": 0, "avg": 0, "cnt": 0},
            "partitions": {
                "5": _partition(5, desired=True, lag=42, committed=1000, hi=1042),
                "-1": _partition(-1, desired=False, lag=-1, committed=-1001, hi=-1001),
            },
        },
    },
    "cgrp": {
        "state": "up",
        "stateage": 29700,
        "join_state": "steady",
        "rebalance_age": 29650,
        "rebalance_cnt": 2,
        "rebalance_reason": "group rejoin",
        "assignment_size": 4,
    },
    "tx": 6124,
    "tx_bytes": 412331,
    "rx": 6123,
    "rx_bytes": 36201110,
    "txmsgs": 0,
    "txmsg_bytes": 0,
    "rxmsgs": 182468,
    "rxmsg_bytes": 72240962,
}
STATS_JSON = json.dumps(STATS, indent=2)


def _lag(registry: CollectorRegistry, topic: str, partition: int) -> float | None:
    return registry.get_sample_value("stream_scorer_consumer_lag", {"topic": topic, "partition": str(partition)})


def test_lag_of_owned_partitions_only() -> None:
    assert consumer_lag(STATS_JSON) == {("transactions", 0): 1523, ("transactions", 2): 0, ("labels", 5): 42}
    assert consumer_lag(STATS_JSON.encode()) == consumer_lag(STATS_JSON)


def test_a_payload_without_desired_counts_its_partitions() -> None:
    stats = {
        "topics": {
            "t": {"partitions": {"0": {"consumer_lag": 3}, "1": {"consumer_lag": True}, "-1": {"consumer_lag": 5}}}
        }
    }
    assert consumer_lag(json.dumps(stats)) == {("t", 0): 3}


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "{",
        "[1, 2]",
        "null",
        '{"name": "rdkafka#consumer-1"}',
        '{"topics": []}',
        b"\xff\xfe{}",
    ],
)
def test_malformed_payloads_give_nothing_and_raise_nothing(payload: str | bytes) -> None:
    assert consumer_lag(payload) == {}
    registry = CollectorRegistry()
    gauge = ConsumerLagGauge(registry)
    assert gauge.update_json(STATS_JSON)
    assert gauge.update_json(payload) is False
    assert _lag(registry, "transactions", 0) == 1523  # the last good reading is kept


def test_odd_entries_are_skipped_not_fatal() -> None:
    stats = {
        "topics": {
            "t": {
                "partitions": {"x": {"consumer_lag": 1}, "0": [], "1": {"consumer_lag": "9"}, "2": {"consumer_lag": 4}}
            },
            "u": {"topic": "u"},
            "v": None,
        }
    }
    assert consumer_lag(json.dumps(stats)) == {("t", 2): 4}


def test_gauge_follows_rebalances() -> None:
    registry = CollectorRegistry()
    gauge = ConsumerLagGauge(registry)
    assert gauge.update_json(STATS_JSON)
    assert _lag(registry, "transactions", 0) == 1523
    assert _lag(registry, "transactions", 2) == 0
    assert _lag(registry, "labels", 5) == 42
    for absent in (1, 3, -1):
        assert _lag(registry, "transactions", absent) is None

    # A rebalance takes partition 0 and labels away and hands over partition 1.
    after = json.loads(STATS_JSON)
    parts = after["topics"]["transactions"]["partitions"]
    parts["0"].update(desired=False, fetch_state="none")
    parts["1"].update(desired=True, fetch_state="active", consumer_lag=17)
    del after["topics"]["labels"]
    assert gauge.update_json(json.dumps(after))
    assert _lag(registry, "transactions", 0) is None
    assert _lag(registry, "labels", 5) is None
    assert _lag(registry, "transactions", 1) == 17
    assert _lag(registry, "transactions", 2) == 0

    gauge.update({})
    assert _lag(registry, "transactions", 1) is None and _lag(registry, "transactions", 2) is None
