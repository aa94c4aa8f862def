"""Features computed from the event itself (pure). Model features named ``event.<name>`` come from here."""

from __future__ import annotations

from typing import Final

import numpy as np

from stream_scorer.batch import EventBatch, Float64Array

EVENT_FEATURES: Final = (
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
HIGH_RISK_MCC: Final = np.array([4829, 5967, 6051, 6540, 7995, 6211], dtype=np.int32)

_DAY_MS: Final = 86_400_000


def event_features(batch: EventBatch) -> dict[str, Float64Array]:
    """Every event feature, one column each, for every row of ``batch``.

    >>> from stream_scorer.events.transaction import to_batch
    >>> row = dict(event_id="e1", event_time=6 * 3_600_000, card_id="c", merchant_id="m", device_id="d",
    ...            amount=99.0, currency="USD", merchant_category_code=7995, country="FR", card_country="US",
    ...            channel="ECOM", entry_mode="ONLINE", card_present=False, ip_address=None)
    >>> f = event_features(to_batch([row], None, 0))
    >>> round(float(f["amount_log"][0]), 4), float(f["hour_sin"][0]), f["cross_border"][0], f["high_risk_mcc"][0]
    (4.6052, 1.0, np.float64(1.0), np.float64(1.0))
    """
    angle = (batch.event_time_ms % _DAY_MS) * (2.0 * np.pi / _DAY_MS)
    return {
        "amount_log": np.log1p(np.maximum(batch.amount, 0.0)),
        "hour_sin": np.sin(angle),
        "hour_cos": np.cos(angle),
        "is_ecom": (batch.channel == "ECOM").astype(np.float64),
        "is_atm": (batch.channel == "ATM").astype(np.float64),
        "card_not_present": (~batch.card_present).astype(np.float64),
        "cross_border": (batch.country != batch.card_country).astype(np.float64),
        "manual_entry": (batch.entry_mode == "MANUAL").astype(np.float64),
        "high_risk_mcc": np.isin(batch.merchant_category_code, HIGH_RISK_MCC).astype(np.float64),
    }
