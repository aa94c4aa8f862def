"""Rolling model quality: every metric against scikit-learn, windows, replacement, NaN, and the Collector."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import (
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from stream_scorer.labels.aggregates import WindowMetrics
from stream_scorer.labels.quality import RollingQuality, WindowSpec
from stream_scorer.monitoring.quality import QualityCollector

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pairs(
    n: int, seed: int, threshold: float = 0.5, low: float = 0.02, high: float = 0.98
) -> tuple[Floats, Bools, Bools]:
    """Random scores away from 0 and 1, labels drawn with the score's probability, decisions at ``threshold``."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(low, high, n)
    return scores, scores >= threshold, rng.random(n) < scores


def reference(scores: Floats, decisions: Bools, labels: Bools) -> dict[str, float]:
    """Every counts-based metric from scikit-learn (or by hand for ECE), on the exact pairs."""
    y, d = labels.astype(int), decisions.astype(int)
    tn, fp, fn, tp = confusion_matrix(y, d, labels=[0, 1]).ravel().tolist()
    bins = np.minimum(np.floor(scores * 10), 9)  # the documented binning
    ece = sum(
        np.count_nonzero(bins == b) / len(y) * abs(scores[bins == b].mean() - y[bins == b].mean())
        for b in range(10)
        if np.any(bins == b)
    )
    return {
        "n": len(y),
        "positives": int(y.sum()),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision_score(y, d, zero_division=np.nan),
        "recall": recall_score(y, d, zero_division=np.nan),
        "f1": f1_score(y, d, zero_division=np.nan),
        "false_positive_rate": fp / (fp + tn) if fp + tn else math.nan,
        "false_negative_rate": fn / (fn + tp) if fn + tp else math.nan,
        "positive_rate": float(y.mean()),
        "log_loss": log_loss(y, scores, labels=[0, 1]),
        "brier": brier_score_loss(y, scores, labels=[0, 1]),
        "ece": float(ece),
    }


def same(got: float, want: float, tol: float = 1e-9) -> bool:
    return (math.isnan(got) and math.isnan(want)) or math.isclose(got, want, rel_tol=0.0, abs_tol=tol)


def assert_matches(m: WindowMetrics, scores: Floats, decisions: Bools, labels: Bools) -> None:
    for name, want in reference(scores, decisions, labels).items():
        assert same(getattr(m, name), want), f"{m.window} {name}: {getattr(m, name)} != {want}"
    bins = np.minimum(np.floor(scores * 10), 9)
    for b, got in enumerate(m.reliability):
        rows = bins == b
        assert got.count == np.count_nonzero(rows)
        if got.count:
            assert same(got.predicted, scores[rows].mean()) and same(got.observed, labels[rows].mean())
        else:
            assert math.isnan(got.predicted) and math.isnan(got.observed)
    if labels.all() or not labels.any():
        assert math.isnan(m.auc) and math.isnan(m.auc_error_bound)
    else:
        assert abs(m.auc - roc_auc_score(labels, scores)) <= m.auc_error_bound + 1e-12


def by_window(quality: RollingQuality, model: str = "m", version: str = "1") -> dict[str, WindowMetrics]:
    return {m.window: m for m in quality.snapshot() if (m.model, m.version) == (model, version)}


def feed(
    quality: RollingQuality, keys: Sequence[str], scores: Floats, decisions: Bools, labels: Bools, at: float
) -> None:
    """Feed pairs in uneven batches, some one by one, so that both update paths run."""
    cuts = [0, 1, 2, 7, 40, 41, 300, len(keys)]
    for start, stop in itertools.pairwise(cuts):
        if stop - start == 1:
            quality.observe(keys[start], "m", "1", float(scores[start]), bool(decisions[start]), int(labels[start]), at)
        elif stop > start:
            rows = slice(start, stop)
            quality.observe_many(
                keys[rows],
                "m",
                "1",
                scores=scores[rows],
                decisions=decisions[rows],
                labels=labels[rows].astype(int),
                ats=np.full(stop - start, at),
            )


@pytest.mark.parametrize(("seed", "threshold"), [(0, 0.5), (1, 0.3), (2, 0.8)])
def test_metrics_match_scikit_learn(seed: int, threshold: float) -> None:
    scores, decisions, labels = pairs(3000, seed, threshold)
    quality = RollingQuality([WindowSpec("all", count=100_000), WindowSpec("1h", seconds=3600)], clock=FakeClock())
    feed(quality, [f"e{i}" for i in range(3000)], scores, decisions, labels, at=0.0)
    windows = by_window(quality)
    for m in windows.values():
        assert_matches(m, scores, decisions, labels)
        assert m.auc_error_bound <= 0.05


def test_log_loss_clips_scores_at_1e_15() -> None:
    scores = np.array([0.0, 1.0, 1e-20, 1.0 - 1e-17, 0.3, 0.0])
    labels = np.array([1, 0, 1, 1, 0, 0])
    clipped = np.clip(scores, 1e-15, 1 - 1e-15)
    want = -np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))
    quality = RollingQuality([WindowSpec("all", count=10)], clock=FakeClock())
    keys = [str(i) for i in range(6)]
    quality.observe_many(keys, "m", "1", scores=scores, decisions=scores >= 0.5, labels=labels, ats=np.zeros(6))
    assert by_window(quality)["all"].log_loss == pytest.approx(want, rel=1e-9)
    assert want > 2 * 34.5 / 6  # two confident misses cost -log(1e-15) each: the clip is what bounds them


def test_auc_stays_within_its_bound_and_the_bound_is_attained() -> None:
    scores, decisions, labels = pairs(5000, 3, low=0.0, high=1.0)
    quality = RollingQuality([WindowSpec("all", count=10_000)], clock=FakeClock())
    quality.observe_many(
        [str(i) for i in range(5000)], "m", "1", scores=scores, decisions=decisions, labels=labels, ats=np.zeros(5000)
    )
    m = by_window(quality)["all"]
    exact = roc_auc_score(labels, scores)
    assert 0.0 < abs(m.auc - exact) <= m.auc_error_bound <= 0.05
    # Scores on a 0.01 grid: every same-bin pair is an exact tie, so the histogram AUC is exact.
    grid = np.round(scores, 2)
    quality = RollingQuality([WindowSpec("all", count=10_000)], clock=FakeClock())
    quality.observe_many(
        [str(i) for i in range(5000)], "m", "1", scores=grid, decisions=decisions, labels=labels, ats=np.zeros(5000)
    )
    m = by_window(quality)["all"]
    assert m.auc == pytest.approx(roc_auc_score(labels, grid), abs=1e-12) and m.auc_error_bound > 0.0
    # Every positive just above every negative in one bin: exact AUC 1, histogram 1/2, error equal to the bound.
    quality = RollingQuality([WindowSpec("all", count=10)], clock=FakeClock())
    tight = np.array([0.5001, 0.5002, 0.5003, 0.5004])
    quality.observe_many(
        list("abcd"), "m", "1", scores=tight, decisions=[True] * 4, labels=[0, 0, 1, 1], ats=np.zeros(4)
    )
    m = by_window(quality)["all"]
    assert roc_auc_score([0, 0, 1, 1], tight) == 1.0 and m.auc == 0.5 and m.auc_error_bound == 0.5


def test_precision_at_k_is_exact_up_to_the_boundary_bin() -> None:
    scores, decisions, labels = pairs(4000, 4, low=0.0, high=1.0)
    quality = RollingQuality([WindowSpec("all", count=4000)], k_percents=(1.0, 5.0, 100.0), clock=FakeClock())
    quality.observe_many(
        [str(i) for i in range(4000)], "m", "1", scores=scores, decisions=decisions, labels=labels, ats=np.zeros(4000)
    )
    got = dict(by_window(quality)["all"].precision_at_k)
    ranked = np.argsort(-scores, kind="stable")
    fine = np.minimum((scores * 1000).astype(int), 999)
    for k in (1.0, 5.0):
        top = int(4000 * k / 100)
        exact = labels[ranked[:top]].mean()
        boundary_count = np.count_nonzero(fine == fine[ranked[top - 1]])
        assert abs(got[k] - exact) <= boundary_count / top
    assert got[100.0] == pytest.approx(labels.mean(), abs=1e-12)
    # One bin: the top k % take the bin's positive share, whatever k.
    coarse = RollingQuality([WindowSpec("all", count=4000)], auc_bins=1, clock=FakeClock())
    coarse.observe_many(
        [str(i) for i in range(4000)], "m", "1", scores=scores, decisions=decisions, labels=labels, ats=np.zeros(4000)
    )
    assert [v for _, v in by_window(coarse)["all"].precision_at_k] == pytest.approx([labels.mean()] * 2, abs=1e-12)


def test_count_window_keeps_only_the_last_n() -> None:
    scores, decisions, labels = pairs(700, 5)
    quality = RollingQuality([WindowSpec("100", count=100), WindowSpec("all", count=1000)], clock=FakeClock())
    keys = [f"e{i}" for i in range(700)]
    feed(quality, keys[:400], scores[:400], decisions[:400], labels[:400], at=0.0)  # its last batch is > 100
    windows = by_window(quality)
    assert windows["100"].n == 100
    assert_matches(windows["100"], scores[300:400], decisions[300:400], labels[300:400])
    for i in range(400, 700):  # one by one, wrapping the ring three times
        quality.observe(keys[i], "m", "1", float(scores[i]), bool(decisions[i]), int(labels[i]), 0.0)
    windows = by_window(quality)
    assert_matches(windows["100"], scores[600:], decisions[600:], labels[600:])
    assert_matches(windows["all"], scores, decisions, labels)


def test_time_window_evicts_buckets_by_the_clock() -> None:
    clock = FakeClock()
    quality = RollingQuality(
        [
            WindowSpec("1h", seconds=3600),
            WindowSpec("10m", seconds=600, bucket_seconds=30),
            WindowSpec("all", count=10),
        ],
        clock=clock,
    )
    quality.observe("a", "m", "1", 0.9, True, 1, 0.0)  # bucket [0, 60) of the hour
    clock.now = 3100.0
    quality.observe("b", "m", "1", 0.2, False, 0, 3100.0)  # bucket [3090, 3120) of the 10 minutes
    clock.now = 3659.9
    windows = by_window(quality)
    assert (windows["1h"].n, windows["10m"].n, windows["all"].n) == (2, 1, 2)
    clock.now = 3660.0  # the bucket [0, 60) has been out of the hour for a full bucket
    windows = by_window(quality)
    assert (windows["1h"].n, windows["1h"].positives, windows["10m"].n) == (1, 0, 1)
    quality.observe("c", "m", "1", 0.8, True, 1, 10.0)  # arrives already out of both time windows
    windows = by_window(quality)
    assert (windows["1h"].n, windows["10m"].n, windows["all"].n) == (1, 1, 3)
    clock.now = 3719.9
    assert by_window(quality)["10m"].n == 1
    clock.now = 3720.0  # b's bucket leaves the 10 minutes at 3120 + 600
    assert by_window(quality)["10m"].n == 0


def test_time_window_matches_scikit_learn_on_what_it_holds() -> None:
    scores, decisions, labels = pairs(2000, 6)
    ats = np.sort(np.random.default_rng(6).uniform(0.0, 10_000.0, 2000))
    clock = FakeClock()
    quality = RollingQuality([WindowSpec("1h", seconds=3600)], bucket_seconds=60.0, clock=clock)
    for chunk in np.array_split(np.arange(2000), 40):
        clock.now = float(ats[chunk[-1]])
        keys = [f"e{i}" for i in chunk]
        quality.observe_many(
            keys, "m", "1", scores=scores[chunk], decisions=decisions[chunk], labels=labels[chunk], ats=ats[chunk]
        )
    for now in (10_000.0, 12_000.0):
        clock.now = now
        held = ats >= (math.floor((now - 3600) / 60)) * 60  # whole 60 s buckets ending after now - 1 h
        assert 0 < np.count_nonzero(held) < 2000
        assert_matches(by_window(quality)["1h"], scores[held], decisions[held], labels[held])


def test_a_contradicting_label_replaces_the_earlier_pair() -> None:
    scores, decisions, labels = pairs(600, 7)
    clock = FakeClock()
    quality = RollingQuality([WindowSpec("all", count=10_000), WindowSpec("1h", seconds=3600)], clock=clock)
    keys = [f"e{i}" for i in range(600)]
    feed(quality, keys, scores, decisions, labels, at=0.0)
    final = {k: (s, d, y) for k, s, d, y in zip(keys, scores, decisions, labels, strict=True)}
    rng = np.random.default_rng(7)
    base = [keys[i] for i in rng.choice(600, 150, replace=False)]
    later = [*base[:100], base[0], base[1], *base[100:], base[120]]  # repeats across batches and within the last
    new_scores = rng.uniform(0.02, 0.98, len(later))
    clock.now = 100.0
    for lo, hi in ((0, 1), (1, 60), (60, 61), (61, len(later))):
        flipped = []
        for k, s in zip(later[lo:hi], new_scores[lo:hi], strict=True):
            final[k] = (s, s >= 0.5, not final[k][2])
            flipped.append(int(final[k][2]))
        rows = slice(lo, hi)
        quality.observe_many(
            later[rows], "m", "1", scores=new_scores[rows], decisions=new_scores[rows] >= 0.5, labels=flipped,
            ats=np.full(hi - lo, 100.0),
        )  # fmt: skip
    want = [np.array([v[i] for v in final.values()]) for i in range(3)]
    windows = by_window(quality)
    for m in windows.values():
        assert m.n == 600
        assert_matches(m, *want)
    assert quality.indexed() == 600


def test_replacement_reverts_only_from_windows_still_holding_the_pair() -> None:
    clock = FakeClock()
    quality = RollingQuality([WindowSpec("50", count=50), WindowSpec("1h", seconds=3600)], clock=clock)
    scores, decisions, labels = pairs(60, 8)
    keys = [f"e{i}" for i in range(60)]
    quality.observe_many(keys, "m", "1", scores=scores, decisions=decisions, labels=labels, ats=np.zeros(60))
    # e5 has left the 50 (seqs 10..59 remain), e30 has not; both flip.
    quality.observe_many(
        ["e5", "e30"],
        "m",
        "1",
        scores=[0.5, 0.6],
        decisions=[True, True],
        labels=[not labels[5], not labels[30]],
        ats=[1.0, 1.0],
    )
    new = {5: (0.5, True, not labels[5]), 30: (0.6, True, not labels[30])}
    count_rows = [i for i in range(12, 60) if i != 30]  # the ring holds seqs 12..61; e30's old slot is empty
    windows = by_window(quality)
    s, d, y = (
        np.array([scores[i] for i in count_rows] + [new[5][0], new[30][0]]),
        np.array([decisions[i] for i in count_rows] + [new[5][1], new[30][1]]),
        np.array([labels[i] for i in count_rows] + [new[5][2], new[30][2]]),
    )
    assert windows["50"].n == 49
    assert_matches(windows["50"], s, d, y)
    hour = [new.get(i, (scores[i], decisions[i], labels[i])) for i in range(60)]
    assert_matches(windows["1h"], *(np.array([h[j] for h in hour]) for j in range(3)))


def test_index_forgets_keys_that_left_every_window() -> None:
    clock = FakeClock()
    quality = RollingQuality([WindowSpec("1h", seconds=3600)], clock=clock)
    quality.observe_many(
        ["a", "b"], "m", "1", scores=[0.9, 0.1], decisions=[True, False], labels=[1, 0], ats=[0.0, 0.0]
    )
    assert quality.indexed() == 2
    clock.now = 7200.0
    assert quality.indexed() == 0
    quality.observe("a", "m", "1", 0.9, True, 0, 7200.0)  # a later label for a forgotten key: a plain new pair
    assert by_window(quality)["1h"].n == 1
    counted = RollingQuality([WindowSpec("10", count=10), WindowSpec("20", count=20)], clock=clock)
    keys = [f"e{i}" for i in range(100)]
    counted.observe_many(
        keys, "m", "1", scores=np.full(100, 0.5), decisions=np.ones(100, bool), labels=np.ones(100), ats=np.zeros(100)
    )
    assert counted.indexed() == 20


def test_empty_and_one_class_windows_are_nan_with_their_support() -> None:
    clock = FakeClock()
    quality = RollingQuality([WindowSpec("1h", seconds=3600)], clock=clock)
    assert quality.snapshot() == []
    quality.observe_many(
        ["a", "b"], "m", "1", scores=[0.7, 0.2], decisions=[True, False], labels=[0, 0], ats=[0.0, 0.0]
    )
    m = by_window(quality)["1h"]
    assert (m.n, m.precision, m.false_positive_rate, m.f1) == (2, 0.0, 0.5, 0.0)
    assert all(math.isnan(v) for v in (m.recall, m.false_negative_rate, m.auc, m.auc_error_bound))
    clock.now = 10_000.0
    m = by_window(quality)["1h"]
    assert (m.n, m.positives, m.tp, m.fp, m.fn, m.tn) == (0, 0, 0, 0, 0, 0)
    undefined = [m.precision, m.recall, m.f1, m.false_positive_rate, m.false_negative_rate, m.positive_rate]
    undefined += [m.log_loss, m.brier, m.ece, m.auc, m.auc_error_bound, *(v for _, v in m.precision_at_k)]
    undefined += [v for b in m.reliability for v in (b.predicted, b.observed)]
    assert all(math.isnan(v) for v in undefined) and all(b.count == 0 for b in m.reliability)


def test_single_observations_equal_one_batch() -> None:
    scores, decisions, labels = pairs(700, 9)
    keys = [f"e{i % 500}" for i in range(700)]  # 200 replacements
    one, batch = (
        RollingQuality([WindowSpec("300", count=300), WindowSpec("1h", seconds=3600)], clock=FakeClock())
        for _ in range(2)
    )
    for k, s, d, y in zip(keys, scores, decisions, labels, strict=True):
        one.observe(k, "m", "1", float(s), bool(d), int(y), 0.0)
    batch.observe_many(keys, "m", "1", scores=scores, decisions=decisions, labels=labels, ats=np.zeros(700))
    for a, b in zip(one.snapshot(), batch.snapshot(), strict=True):
        assert a.n == b.n > 0 and (a.tp, a.fp, a.fn, a.tn) == (b.tp, b.fp, b.fn, b.tn)
        assert same(a.log_loss, b.log_loss, 1e-12) and same(a.ece, b.ece, 1e-12) and same(a.auc, b.auc, 1e-12)


@pytest.mark.parametrize(
    "call",
    [
        lambda q: q.observe("a", "m", "1", 1.5, True, 1, 0.0),
        lambda q: q.observe("a", "m", "1", math.nan, True, 1, 0.0),
        lambda q: q.observe("a", "m", "1", 0.5, True, 2, 0.0),
        lambda q: q.observe_many(["a"], "m", "1", scores=[0.5, 0.2], decisions=[True], labels=[1], ats=[0.0]),
        lambda q: q.observe_many(["a"], "m", "1", scores=[-0.1], decisions=[True], labels=[1], ats=[0.0]),
        lambda q: q.observe_many(["a"], "m", "1", scores=[0.1], decisions=[True], labels=[1], ats=[math.inf]),
    ],
)
def test_bad_pairs_are_rejected(call: object) -> None:
    quality = RollingQuality([WindowSpec("1h", seconds=3600)], clock=FakeClock())
    with pytest.raises(ValueError):
        call(quality)  # type: ignore[operator]
    assert quality.snapshot() == []


def test_bad_windows_are_rejected() -> None:
    for bad in (
        dict(count=10, seconds=60.0),
        dict(),
        dict(count=0),
        dict(seconds=-1.0),
        dict(count=5, bucket_seconds=1.0),
    ):
        with pytest.raises(ValueError, match="window 'w'"):
            WindowSpec("w", **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique"):
        RollingQuality([WindowSpec("w", count=1), WindowSpec("w", seconds=1.0)])
    with pytest.raises(ValueError, match="k_percents"):
        RollingQuality([WindowSpec("w", count=1)], k_percents=(0.0,))


NAMES = [
    "precision", "recall", "f1", "false_positive_rate", "false_negative_rate", "positive_rate", "log_loss", "brier",
    "ece", "auc", "auc_error_bound", "window_labels",
]  # fmt: skip


def test_collector_exports_every_window_at_scrape_time() -> None:
    clock = FakeClock()
    quality = RollingQuality([WindowSpec("10000", count=10_000), WindowSpec("1h", seconds=3600)], clock=clock)
    registry = CollectorRegistry()
    QualityCollector(quality, registry=registry)
    scores, decisions, labels = pairs(400, 10)
    quality.observe_many(
        [str(i) for i in range(400)],
        "champion",
        "7",
        scores=scores,
        decisions=decisions,
        labels=labels,
        ats=np.zeros(400),
    )
    quality.observe_many(["x"], "challenger", "1", scores=[0.9], decisions=[True], labels=[0], ats=[0.0])
    clock.now = 5000.0  # the hour is now empty; the count window is not
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    snapshot = {(m.model, m.version, m.window): m for m in quality.snapshot()}
    assert len(snapshot) == 4
    for (model, version, window), m in snapshot.items():
        series = (("model", model), ("version", version), ("window", window))
        for name in NAMES:
            want = float(m.n) if name == "window_labels" else getattr(m, name)
            assert same(samples[(f"stream_scorer_model_{name}", series)], want, 0.0), name
        assert samples[("stream_scorer_model_window_positives", series)] == m.tp + m.fn == m.positives
        assert samples[("stream_scorer_model_window_flagged", series)] == m.tp + m.fp
        for k, value in m.precision_at_k:
            assert same(samples[("stream_scorer_model_precision_at_k", (("k", f"{k:g}"), *series))], value, 0.0)
        for b, rel in enumerate(m.reliability):
            labelled = tuple(sorted((*series, ("bin", str(b)))))
            assert same(samples[("stream_scorer_model_reliability_predicted", labelled)], rel.predicted, 0.0)
            assert same(samples[("stream_scorer_model_reliability_observed", labelled)], rel.observed, 0.0)
            assert samples[("stream_scorer_model_reliability_labels", labelled)] == rel.count
    champion = (("model", "champion"), ("version", "7"), ("window", "10000"))
    assert samples[("stream_scorer_model_precision", champion)] == pytest.approx(precision_score(labels, decisions))
    assert ("stream_scorer_model_precision_at_k", (("k", "1"), *champion)) in samples
    assert ("stream_scorer_model_precision_at_k", (("k", "5"), *champion)) in samples
    hour = (("model", "challenger"), ("version", "1"), ("window", "1h"))
    assert samples[("stream_scorer_model_window_labels", hour)] == 0.0
    assert math.isnan(samples[("stream_scorer_model_precision", hour)])
    assert len(samples) == 4 * (len(NAMES) + 2 + 2 + 3 * 10)  # + the supports of recall and precision


def test_the_replacement_index_is_capped() -> None:
    from stream_scorer.labels.quality import RollingQuality, WindowSpec

    quality = RollingQuality([WindowSpec("1h", seconds=3600)], max_indexed=100, clock=lambda: 0.0)
    for i in range(500):
        quality.observe(f"e{i}", "m", "1", 0.5, True, i % 2, 0.0)
    quality.snapshot()
    assert quality.indexed() == 100
    quality.observe("e0", "m", "1", 0.5, True, 1, 0.0)  # too old to replace: added as a new pair
    assert quality.snapshot()[0].n == 501


def test_a_retired_model_version_stops_exporting() -> None:
    from stream_scorer.labels.quality import RollingQuality, WindowSpec

    now = [0.0]
    quality = RollingQuality([WindowSpec("10", count=10)], retire_after_seconds=100, clock=lambda: now[0])
    quality.observe("e1", "m", "1", 0.5, True, 1, 0.0)
    now[0] = 50.0
    quality.observe("e2", "m", "2", 0.5, True, 1, 50.0)
    assert {(m.version, m.n) for m in quality.snapshot()} == {("1", 1), ("2", 1)}
    now[0] = 120.0
    assert {m.version for m in quality.snapshot()} == {"2"}
