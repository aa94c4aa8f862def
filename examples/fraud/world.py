"""A synthetic card-payments world with a known truth, seeded and reproducible.

Cards, merchants and devices carry feature-group values (the groups of ``settings.toml``). Transactions
(``transaction.avsc``) are sampled from them, and each one's fraud label is drawn from a ground-truth
logistic model over exactly the features that ``features.toml`` declares. A model trained on the world's
history should therefore recover the truth; tests and the demo rely on that.

The interface every example world offers to ``python -m tools.synth``: :func:`make_world`,
:meth:`World.entity_keys`, :attr:`World.group_values`, :func:`simulate` and :func:`shift`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from examples.truth import solve_intercept
from stream_scorer.batch import Float64Array
from stream_scorer.config import FeatureGroup, load_settings
from stream_scorer.model.calibration import sigmoid

SETTINGS = Path(__file__).with_name("settings.toml")
FEATURE_GROUPS: tuple[FeatureGroup, ...] = load_settings(SETTINGS, environ={}).feature_groups
EVENT_FEATURES = (
    "amount_log",  # log1p(amount)
    "hour_sin",  # time of day (UTC) on the unit circle
    "hour_cos",
    "is_ecom",  # channel == ECOM
    "is_atm",  # channel == ATM
    "card_not_present",  # not card_present
    "cross_border",  # country != card_country
    "manual_entry",  # entry_mode == MANUAL
    "high_risk_mcc",  # merchant category code in HIGH_RISK_MCC
)
# Wire transfers, quasi-cash, money orders, gambling, securities, direct-marketing: classic fraud MCCs.
HIGH_RISK_MCC = np.array([4829, 5967, 6051, 6540, 7995, 6211])
FEATURE_NAMES: tuple[str, ...] = tuple(f"event.{f}" for f in EVENT_FEATURES) + tuple(
    f"{g.name}.{f}" for g in FEATURE_GROUPS for f in g.features
)

# The ground truth, on raw feature values. The intercept is solved for BASE_RATE.
TRUTH_COEF: dict[str, float] = {
    "event.amount_log": 0.45,
    "event.hour_sin": 0.15,
    "event.hour_cos": -0.3,
    "event.is_ecom": 0.6,
    "event.is_atm": 0.3,
    "event.card_not_present": 0.5,
    "event.cross_border": 0.9,
    "event.manual_entry": 0.8,
    "event.high_risk_mcc": 1.0,
    "card_velocity.txn_count_1h": 0.35,
    "card_velocity.amount_sum_1h": 0.002,
    "card_velocity.txn_count_24h": 0.05,
    "card_velocity.distinct_merchants_24h": 0.15,
    "card_profile.account_age_days": -0.0015,
    "card_profile.avg_amount_30d": -0.004,
    "card_profile.chargebacks_180d": 0.9,
    "merchant_risk.fraud_rate_30d": 25.0,
    "merchant_risk.refund_rate_30d": 5.0,
    "merchant_risk.txn_count_24h": -0.0005,
    "device_profile.distinct_cards_24h": 0.5,
    "device_profile.device_age_days": -0.002,
}
BASE_RATE = 0.02

COUNTRIES = np.array(["US", "GB", "FR", "DE", "CA", "JP", "AU", "CH"])
CURRENCY_OF = {"US": "USD", "GB": "GBP", "FR": "EUR", "DE": "EUR", "CA": "CAD", "JP": "JPY", "AU": "AUD", "CH": "CHF"}
MCCS = np.array([5411, 5812, 5541, 5999, 5732, 4121, 5311, 7011, 4829, 6051, 7995, 5967])
CHANNELS = np.array(["POS", "ECOM", "ATM", "MOTO"])
CHANNEL_P = np.array([0.55, 0.35, 0.05, 0.05])


@dataclass(frozen=True, slots=True)
class World:
    """Entities and their feature-group values (raw, as stored in Redis)."""

    seed: int
    card_ids: list[str]
    merchant_ids: list[str]
    device_ids: list[str]
    card_device: npt.NDArray[np.intp]
    card_country: npt.NDArray[np.str_]
    merchant_mcc: npt.NDArray[np.int32]
    group_values: dict[str, Float64Array]  # group name -> (n_entities_of_its_type, k)
    truth_intercept: float

    def entity_count(self, entity: str) -> int:
        return len(getattr(self, f"{entity}_ids"))

    def entity_keys(self, entity: str) -> list[str]:
        """The keys of an entity, in the row order of its groups' values."""
        keys: list[str] = getattr(self, f"{entity}_ids")
        return keys


def make_world(seed: int = 7, n_cards: int = 20_000, n_merchants: int = 2_000, n_devices: int = 25_000) -> World:
    """Build the entities and their features deterministically from ``seed``."""
    rng = np.random.default_rng(seed)
    risky_card = rng.random(n_cards) < 0.04
    risky_merchant = rng.random(n_merchants) < 0.05
    risky_device = rng.random(n_devices) < 0.03
    count_1h = rng.poisson(np.where(risky_card, 2.5, 0.4))
    count_24h = count_1h + rng.poisson(np.where(risky_card, 8.0, 3.0))
    avg_amount = rng.lognormal(3.5, 0.6, n_cards)
    card_velocity = np.column_stack(
        [
            count_1h,
            count_1h * avg_amount * rng.lognormal(0.0, 0.5, n_cards),
            count_24h,
            np.minimum(count_24h, rng.poisson(np.where(risky_card, 6.0, 2.0))),
        ]
    )
    card_profile = np.column_stack(
        [
            rng.exponential(np.where(risky_card, 120.0, 900.0)),
            avg_amount,
            rng.poisson(np.where(risky_card, 0.8, 0.03)),
        ]
    )
    merchant_risk = np.column_stack(
        [
            np.where(risky_merchant, rng.beta(2, 25, n_merchants), rng.beta(1, 200, n_merchants)),
            rng.beta(2, 60, n_merchants),
            rng.lognormal(5.0, 1.0, n_merchants),
        ]
    )
    device_profile = np.column_stack(
        [
            1 + rng.poisson(np.where(risky_device, 3.0, 0.2)),
            rng.exponential(np.where(risky_device, 20.0, 400.0)),
        ]
    )
    world = World(
        seed=seed,
        card_ids=[f"card-{i:07d}" for i in range(n_cards)],
        merchant_ids=[f"merchant-{i:05d}" for i in range(n_merchants)],
        device_ids=[f"device-{i:07d}" for i in range(n_devices)],
        card_device=rng.integers(0, n_devices, n_cards),
        card_country=COUNTRIES[np.minimum(rng.geometric(0.6, n_cards) - 1, len(COUNTRIES) - 1)],
        merchant_mcc=MCCS[rng.integers(0, len(MCCS), n_merchants)].astype(np.int32),
        group_values={
            "card_velocity": card_velocity.astype(np.float64),
            "card_profile": card_profile.astype(np.float64),
            "merchant_risk": merchant_risk.astype(np.float64),
            "device_profile": device_profile.astype(np.float64),
        },
        truth_intercept=0.0,
    )
    sample, _ = sample_events(world, 50_000, start_ms=1_700_000_000_000, rng=np.random.default_rng(seed + 1))
    logits = feature_matrix(world, sample) @ truth_vector()
    return World(**{**_fields(world), "truth_intercept": solve_intercept(logits, BASE_RATE)})


def _fields(world: World) -> dict[str, Any]:
    return {name: getattr(world, name) for name in World.__slots__}


def truth_vector() -> Float64Array:
    """The ground-truth coefficients in ``FEATURE_NAMES`` order."""
    return np.array([TRUTH_COEF[name] for name in FEATURE_NAMES])


@dataclass(frozen=True, slots=True)
class Sampled:
    """The entity indices behind sampled events."""

    card: npt.NDArray[np.intp]
    merchant: npt.NDArray[np.intp]
    device: npt.NDArray[np.intp]


def sample_events(
    world: World, n: int, *, start_ms: int, rng: np.random.Generator, spacing_ms: float = 50.0, id_prefix: str = "evt"
) -> tuple[list[dict[str, Any]], Sampled]:
    """``n`` transaction records (``schemas/transaction.avsc``) and the entities they use."""
    card = rng.integers(0, len(world.card_ids), n)
    merchant = rng.integers(0, len(world.merchant_ids), n)
    device = world.card_device[card]
    channel = CHANNELS[rng.choice(len(CHANNELS), n, p=CHANNEL_P)]
    card_country = world.card_country[card]
    abroad = rng.random(n) < 0.08
    country = np.where(abroad, COUNTRIES[rng.integers(0, len(COUNTRIES), n)], card_country)
    amount = np.round(world.group_values["card_profile"][card, 1] * rng.lognormal(0.0, 0.8, n), 2)
    pos_modes = np.array(["CHIP", "CONTACTLESS", "SWIPE"])[rng.integers(0, 3, n)]
    entry_mode = np.select(
        [channel == "POS", channel == "ECOM", channel == "ATM"], [pos_modes, "ONLINE", "CHIP"], "MANUAL"
    )
    event_time = start_ms + (np.arange(n) * spacing_ms).astype(np.int64)
    mcc = world.merchant_mcc[merchant]
    run = rng.integers(0, 2**40)
    records = [
        {
            "event_id": f"{id_prefix}-{run:010x}-{i:08d}",
            "event_time": int(event_time[i]),
            "card_id": world.card_ids[card[i]],
            "merchant_id": world.merchant_ids[merchant[i]],
            "device_id": world.device_ids[device[i]],
            "amount": float(amount[i]),
            "currency": CURRENCY_OF[str(country[i])],
            "merchant_category_code": int(mcc[i]),
            "country": str(country[i]),
            "card_country": str(card_country[i]),
            "channel": str(channel[i]),
            "entry_mode": str(entry_mode[i]),
            "card_present": bool(channel[i] in ("POS", "ATM")),
            "ip_address": f"198.51.100.{i % 250}" if channel[i] == "ECOM" else None,
        }
        for i in range(n)
    ]
    return records, Sampled(card=card, merchant=merchant, device=device)


def feature_matrix(
    world: World, sampled_records: Sequence[dict[str, Any]], sampled: Sampled | None = None
) -> Float64Array:
    """The true raw features of each record, in ``FEATURE_NAMES`` order (all groups fresh)."""
    if sampled is None:
        index = {
            name: {e: i for i, e in enumerate(getattr(world, f"{name}_ids"))} for name in ("card", "merchant", "device")
        }
        sampled = Sampled(
            card=np.array([index["card"][r["card_id"]] for r in sampled_records]),
            merchant=np.array([index["merchant"][r["merchant_id"]] for r in sampled_records]),
            device=np.array([index["device"][r["device_id"]] for r in sampled_records]),
        )
    events = event_features(sampled_records)
    rows_of = {"card": sampled.card, "merchant": sampled.merchant, "device": sampled.device}
    columns = [events[f] for f in EVENT_FEATURES]
    for group in FEATURE_GROUPS:
        block = world.group_values[group.name][rows_of[group.entity]]
        columns.extend(block[:, j] for j in range(len(group.features)))
    return np.column_stack(columns)


def event_features(records: Sequence[dict[str, Any]]) -> dict[str, Float64Array]:
    """The ground truth's event features of each record (the world's own code: the scorer computes the same
    values from the declarations of features.toml, and the tests check that it does)."""
    n = len(records)

    def col(name: str) -> npt.NDArray[Any]:
        return np.array([r[name] for r in records]) if n else np.zeros(0)

    day_ms = 86_400_000
    angle = (col("event_time").astype(np.int64) % day_ms) * (2.0 * np.pi / day_ms)
    channel = col("channel")
    return {
        "amount_log": np.log1p(np.maximum(col("amount").astype(np.float64), 0.0)),
        "hour_sin": np.sin(angle),
        "hour_cos": np.cos(angle),
        "is_ecom": (channel == "ECOM").astype(np.float64),
        "is_atm": (channel == "ATM").astype(np.float64),
        "card_not_present": (~col("card_present").astype(bool)).astype(np.float64),
        "cross_border": (col("country") != col("card_country")).astype(np.float64),
        "manual_entry": (col("entry_mode") == "MANUAL").astype(np.float64),
        "high_risk_mcc": np.isin(col("merchant_category_code"), HIGH_RISK_MCC).astype(np.float64),
    }


def simulate(
    world: World, n: int, *, start_ms: int, rng: np.random.Generator, spacing_ms: float = 50.0, id_prefix: str = "evt"
) -> tuple[list[dict[str, Any]], Float64Array]:
    """``n`` transaction records from ``start_ms`` on, and each one's true fraud probability."""
    records, sampled = sample_events(world, n, start_ms=start_ms, rng=rng, spacing_ms=spacing_ms, id_prefix=id_prefix)
    return records, truth_probability(world, feature_matrix(world, records, sampled))


def shift(record: dict[str, Any], factor: float) -> None:
    """Move one record's distribution (drift): its amount times ``factor``."""
    record["amount"] = round(record["amount"] * factor, 2)


def truth_probability(world: World, matrix: Float64Array) -> Float64Array:
    """The ground-truth fraud probability of each row of a ``feature_matrix``."""
    return sigmoid(matrix @ truth_vector() + world.truth_intercept)


def draw_labels(world: World, matrix: Float64Array, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """0/1 labels drawn from the truth."""
    return (rng.random(len(matrix)) < truth_probability(world, matrix)).astype(np.int64)


def group_by_name(name: str, groups: Sequence[FeatureGroup] = FEATURE_GROUPS) -> FeatureGroup:
    """The feature group called ``name``."""
    return next(g for g in groups if g.name == name)
