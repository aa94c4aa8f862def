"""A synthetic ad-serving world with a known truth, seeded and reproducible.

Visitors and creatives carry feature-group values (the groups of ``settings.toml``). Impressions
(``impression.avsc``) are sampled from them, and whether each is clicked is drawn from a ground-truth
logistic model over the features that ``features.toml`` declares, written here in the world's own code.
A model trained on the world's history should recover it.

The interface ``python -m tools.synth`` uses: :func:`make_world`, :meth:`World.entity_keys`,
:attr:`World.group_values`, :func:`simulate` and :func:`shift`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from examples.truth import solve_intercept
from stream_scorer.batch import Float64Array
from stream_scorer.model.calibration import sigmoid

SEGMENTS = ("NEW", "CASUAL", "LOYAL", "LAPSED")
FORMATS = ("BANNER", "VIDEO", "NATIVE")
PLACEMENTS = ("FEED", "SEARCH", "SIDEBAR", "STORY")
SYSTEMS = ("ANDROID", "IOS", "WEB", "OTHER")
CAMPAIGNS = tuple(f"campaign-{c}" for c in "abcdefghij")
# The ground truth: effects on the logit. The intercept is solved for BASE_RATE.
PLACEMENT_EFFECT = {"FEED": 0.3, "SEARCH": 0.9, "SIDEBAR": -0.6, "STORY": 0.0}
SYSTEM_EFFECT = {"ANDROID": 0.0, "IOS": 0.25, "WEB": -0.3, "OTHER": -0.5}
SEGMENT_EFFECT = {"NEW": -0.2, "CASUAL": 0.0, "LOYAL": 0.6, "LAPSED": -0.8}
BASE_RATE = 0.06
_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class World:
    """Visitors and creatives, their attributes and their feature-group values (raw, as stored in Redis)."""

    seed: int
    user_ids: npt.NDArray[np.int64]
    user_segment: npt.NDArray[np.intp]
    creative_ids: npt.NDArray[np.int64]
    creative_format: npt.NDArray[np.intp]
    creative_campaign: npt.NDArray[np.intp]
    group_values: dict[str, Float64Array]
    truth_intercept: float = 0.0

    def entity_keys(self, entity: str) -> list[str]:
        """The keys of an entity as text, in the row order of its groups' values."""
        ids = self.user_ids if entity == "visitor" else self.creative_ids
        return [str(i) for i in ids.tolist()]


def make_world(seed: int = 7, n_users: int = 5_000, n_creatives: int = 300) -> World:
    """Build the visitors, creatives and their features deterministically from ``seed``."""
    rng = np.random.default_rng(seed)
    engaged = rng.random(n_users) < 0.2
    impressions = rng.poisson(np.where(engaged, 120, 40), n_users).astype(np.float64)
    clicks = rng.binomial(impressions.astype(np.int64), np.where(engaged, 0.08, 0.02)).astype(np.float64)
    ctr = rng.beta(2, 60, n_creatives)
    world = World(
        seed=seed,
        user_ids=(9_000_000_000 + rng.choice(10**8, n_users, replace=False)).astype(np.int64),  # past 32 bits
        user_segment=rng.choice(len(SEGMENTS), n_users, p=[0.15, 0.45, 0.25, 0.15]),
        creative_ids=(500 + np.arange(n_creatives)).astype(np.int64),
        creative_format=rng.choice(len(FORMATS), n_creatives, p=[0.5, 0.2, 0.3]),
        creative_campaign=rng.integers(0, len(CAMPAIGNS), n_creatives),
        group_values={
            "visitor_engagement": np.column_stack([clicks, impressions, rng.poisson(np.where(engaged, 6, 2), n_users)]),
            "visitor_profile": rng.exponential(400.0, n_users)[:, None],
            "creative_stats": np.column_stack(
                [ctr, rng.lognormal(9, 1, n_creatives), rng.exponential(30, n_creatives)]
            ),
        },
    )
    records, rows = _sample(world, 40_000, 1_700_000_000_000, np.random.default_rng(seed + 1), 50.0, "calibrate")
    intercept = solve_intercept(_logits(world, records, rows), BASE_RATE)
    return replace(world, truth_intercept=intercept)


def simulate(
    world: World, n: int, *, start_ms: int, rng: np.random.Generator, spacing_ms: float = 50.0, id_prefix: str = "imp"
) -> tuple[list[dict[str, Any]], Float64Array]:
    """``n`` impression records from ``start_ms`` on, and each one's true click probability."""
    records, rows = _sample(world, n, start_ms, rng, spacing_ms, id_prefix)
    return records, sigmoid(_logits(world, records, rows) + world.truth_intercept)


def shift(record: dict[str, Any], factor: float) -> None:
    """Move one record's distribution (drift): its bid times ``factor``."""
    record["bid_price"] = round(record["bid_price"] * factor, 4)


@dataclass(frozen=True, slots=True)
class _Rows:
    user: npt.NDArray[np.intp]
    creative: npt.NDArray[np.intp]


def _sample(
    world: World, n: int, start_ms: int, rng: np.random.Generator, spacing_ms: float, id_prefix: str
) -> tuple[list[dict[str, Any]], _Rows]:
    user = rng.integers(0, len(world.user_ids), n)
    creative = rng.integers(0, len(world.creative_ids), n)
    placement = rng.choice(len(PLACEMENTS), n, p=[0.5, 0.2, 0.2, 0.1])
    system = rng.choice(len(SYSTEMS), n, p=[0.45, 0.35, 0.15, 0.05])
    shown_us = (start_ms + np.arange(n) * spacing_ms) * 1000 + rng.integers(0, 1000, n)
    run = rng.integers(0, 2**40)
    records = [
        {
            "impression_id": f"{id_prefix}-{run:010x}-{i:08d}",
            "shown_at": int(shown_us[i]),
            "visitor": {"visitor_id": int(world.user_ids[user[i]]), "segment": SEGMENTS[world.user_segment[user[i]]]},
            "ad": {
                "creative_id": int(world.creative_ids[creative[i]]),
                "campaign": CAMPAIGNS[world.creative_campaign[creative[i]]],
                "media": FORMATS[world.creative_format[creative[i]]],
            },
            "placement": PLACEMENTS[placement[i]],
            "device_os": SYSTEMS[system[i]],
            "slot_position": int(1 + rng.poisson(2.0)),
            "bid_price": round(float(rng.lognormal(0.5, 0.7)), 4),
            "search_query": f"query {i % 97}" if PLACEMENTS[placement[i]] == "SEARCH" else None,
            "referrer": None if rng.random() < 0.4 else f"site-{i % 13}.example",
        }
        for i in range(n)
    ]
    return records, _Rows(user=user, creative=creative)


def _logits(world: World, records: Sequence[dict[str, Any]], rows: _Rows) -> Float64Array:
    """The ground truth's logit of each record, before the intercept (the world's own code)."""

    def col(read: Any) -> npt.NDArray[Any]:
        return np.array([read(r) for r in records])

    ms = col(lambda r: r["shown_at"] // 1000).astype(np.float64)
    hour = (ms % _DAY_MS) * (2 * np.pi / _DAY_MS)
    week = np.mod(ms + 3 * _DAY_MS, 7 * _DAY_MS) * (2 * np.pi / (7 * _DAY_MS))
    engagement = world.group_values["visitor_engagement"][rows.user]
    signup = world.group_values["visitor_profile"][rows.user, 0]
    creative = world.group_values["creative_stats"][rows.creative]
    logits: Float64Array = (
        0.8 * np.log1p(np.maximum(col(lambda r: r["bid_price"]), 0.0))
        - 0.15 * col(lambda r: r["slot_position"])
        + 0.3 * np.sin(hour)
        - 0.2 * np.cos(hour)
        + 0.15 * np.sin(week)
        + col(lambda r: PLACEMENT_EFFECT[r["placement"]])
        + col(lambda r: SYSTEM_EFFECT[r["device_os"]])
        + col(lambda r: SEGMENT_EFFECT[r["visitor"]["segment"]])
        + 0.6 * col(lambda r: r["ad"]["media"] == "VIDEO")
        + 0.4 * col(lambda r: r["referrer"] is None)
        + 0.05 * engagement[:, 0]
        - 0.004 * engagement[:, 1]
        + 0.08 * engagement[:, 2]
        - 0.0008 * signup
        + 18.0 * creative[:, 0]
        - 0.00001 * creative[:, 1]
        - 0.01 * creative[:, 2]
    )
    return logits
