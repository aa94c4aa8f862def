"""A declarative feature spec, so that training and serving build exactly the same matrix.

A spec file is TOML. Inputs are event fields (``event.<path>``) and feature-group columns
(``<group>.<feature>``). The matrix holds numeric features first (``numeric``, ``cyclic``, ``member``,
``compare``, ``missing``), then one-hot, then hashed, each in file order::

    label = "label"              # optional; the CLI may override it
    time_column = "event.ts"     # optional: split by time when present
    [[numeric]]
    column = "event.price"
    name = "event.price_log"     # optional: the feature's name (default: the column)
    clip_min = 0                 # optional clip_min / clip_max, then optional log1p
    log1p = true
    impute = "mean"              # mean | median | zero | a number (default mean)
    standardize = true           # default true (for every numeric-like section)
    [[cyclic]]                   # two features, <name>_sin and <name>_cos
    column = "event.ts"          # an epoch-millisecond time
    period = "day"               # day (time of day) | week (day of week)
    [[member]]                   # 1 when the category is listed
    name = "event.risky_category"
    column = "event.category"
    values = [4829, 7995]        # strings, integers or booleans
    [[compare]]                  # 1 when the two categories are equal (op = "equal") or differ (op = "differ")
    name = "event.abroad"
    left = "event.ship_to_country"
    right = "event.billing_country"
    op = "differ"
    [[missing]]                  # 1 where the column is missing (null, NaN or "")
    column = "event.coupon"
    [[onehot]]
    column = "event.tier"
    categories = ["GOLD", "BASIC"] # optional: else the max_categories (default 20) most frequent training values
    [[hashed]]
    column = "event.shop_id"
    buckets = 32

:func:`~stream_scorer.training.specfile.load_spec` reads a file,
:func:`fit_spec` fits it on the training columns; the resulting
:class:`FittedSpec`, its :func:`transform` and its manifest form live in :mod:`~stream_scorer.model.fitted_spec`
(re-exported here) so that the worker need not import the TOML reader.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import Float64Array
from stream_scorer.errors import TrainingError
from stream_scorer.model.derive import Derivation, derived
from stream_scorer.model.fitted_spec import (
    FittedHashed,
    FittedNumeric,
    FittedOneHot,
    FittedSpec,
    as_categories,
    bucket_of,
    fitted_from_dict,
    transform,
)

__all__ = [
    "FeatureSpec",
    "FittedHashed",
    "FittedNumeric",
    "FittedOneHot",
    "FittedSpec",
    "HashedFeature",
    "NumericFeature",
    "OneHotFeature",
    "as_categories",
    "bucket_of",
    "default_spec",
    "fit_spec",
    "fitted_from_dict",
    "transform",
]

ImputeRule = Literal["mean", "median", "zero"] | float
_RULES = ("mean", "median", "zero")


@dataclass(frozen=True, slots=True)
class NumericFeature:
    """A numeric matrix column: ``column`` read as it is, or computed from inputs by ``derive``."""

    column: str
    impute: ImputeRule = "mean"
    standardize: bool = True
    derive: Derivation | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        """The input columns it reads."""
        return (self.column,) if self.derive is None else self.derive.inputs


@dataclass(frozen=True, slots=True)
class OneHotFeature:
    column: str
    categories: tuple[str, ...] | None = None
    max_categories: int = 20


@dataclass(frozen=True, slots=True)
class HashedFeature:
    column: str
    buckets: int


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Declared features; ``specfile.load_spec`` or :func:`default_spec` builds one, :func:`fit_spec` fits it."""

    numeric: tuple[NumericFeature, ...] = ()
    onehot: tuple[OneHotFeature, ...] = ()
    hashed: tuple[HashedFeature, ...] = ()
    label: str | None = None
    time_column: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """The input columns the spec reads, in matrix order."""
        inputs = [c for f in self.numeric for c in f.inputs] + [f.column for f in self.onehot + self.hashed]
        return tuple(dict.fromkeys(inputs))

    def __post_init__(self) -> None:
        declared = [f.column for f in self.numeric + self.onehot + self.hashed]
        if not declared:
            raise TrainingError("the feature spec declares no feature")
        if dupes := sorted({c for c in declared if declared.count(c) > 1}):
            raise TrainingError(f"the feature spec declares features more than once: {dupes}")
        for n in self.numeric:
            number = isinstance(n.impute, int | float) and not isinstance(n.impute, bool)
            if not (n.impute in _RULES or (number and math.isfinite(float(n.impute)))):
                raise TrainingError(
                    f"{n.column}: impute must be mean, median, zero or a finite number, not {n.impute!r}"
                )
        for o in self.onehot:
            if o.categories is not None and (not o.categories or len(set(o.categories)) < len(o.categories)):
                raise TrainingError(f"{o.column}: categories must be a non-empty list without repeats")
            if o.categories is not None and "" in o.categories:
                raise TrainingError(f"{o.column}: the empty string means missing and cannot be a category")
            if type(o.max_categories) is not int or o.max_categories < 1:
                raise TrainingError(f"{o.column}: max_categories must be an integer >= 1, not {o.max_categories!r}")
        for h in self.hashed:
            if type(h.buckets) is not int or h.buckets < 1:
                raise TrainingError(f"{h.column}: buckets must be an integer >= 1, not {h.buckets!r}")


def default_spec(numeric_columns: Iterable[str]) -> FeatureSpec:
    """Every column numeric, imputed by its mean and standardized: today's numeric-only CSV behaviour.

    >>> default_spec(["group.count"]).numeric
    (NumericFeature(column='group.count', impute='mean', standardize=True, derive=None),)
    """
    return FeatureSpec(numeric=tuple(NumericFeature(c) for c in numeric_columns))


def fit_spec(spec: FeatureSpec, columns: Mapping[str, npt.NDArray[Any]]) -> FittedSpec:
    """Fit impute values, standardization and category lists on the training rows.

    >>> fitted = fit_spec(
    ...     FeatureSpec(numeric=(NumericFeature("x", impute="median"),), onehot=(OneHotFeature("c"),)),
    ...     {"x": np.array([1.0, np.nan, 3.0, 4.0]), "c": np.array(["b", "a", "b", ""], dtype=object)},
    ... )
    >>> fitted.feature_names, fitted.numeric[0].impute_value, fitted.numeric[0].mean
    (('x', 'c=a', 'c=b'), 3.0, 2.75)
    """
    missing = [c for c in spec.columns if c not in columns]
    if missing:
        raise TrainingError(f"the data lacks the feature spec's columns {missing}; it has {sorted(columns)}")
    numeric = tuple(
        _fit_numeric(n, np.asarray(columns[n.column]) if n.derive is None else derived(n.derive, columns))
        for n in spec.numeric
    )
    onehot = tuple(_fit_onehot(o, _fit_categories(o.column, columns[o.column])) for o in spec.onehot)
    for h in spec.hashed:
        _fit_categories(h.column, columns[h.column])
    return FittedSpec(numeric, onehot, tuple(FittedHashed(h.column, h.buckets) for h in spec.hashed))


def _fit_numeric(feature: NumericFeature, values: npt.NDArray[Any]) -> FittedNumeric:
    if values.dtype.kind not in "fiub":
        raise TrainingError(f"{feature.column} holds strings; declare it [[onehot]] or [[hashed]], not [[numeric]]")
    x = values.astype(np.float64)
    if np.isinf(x).any():
        raise TrainingError(f"{feature.column} has {int(np.isinf(x).sum())} infinite values")
    present = x[~np.isnan(x)]
    if feature.impute in ("mean", "median") and not len(present):
        raise TrainingError(f"{feature.column} has no value to take the {feature.impute} of")
    fill = _impute_value(feature.impute, present)
    low, high = (float(present.min()), float(present.max())) if len(present) else (None, None)
    x = np.where(np.isnan(x), fill, x)
    if not feature.standardize:
        return FittedNumeric(feature.column, fill, 0.0, 1.0, low, high, feature.derive)
    scale = float(x.std()) if len(x) else 0.0
    mean = float(x.mean()) if len(x) else 0.0
    return FittedNumeric(feature.column, fill, mean, scale if scale > 0 else 1.0, low, high, feature.derive)


def _impute_value(rule: ImputeRule, present: Float64Array) -> float:
    if rule == "mean":
        return float(np.mean(present))
    if rule == "median":
        return float(np.median(present))
    return 0.0 if rule == "zero" else float(rule)


def _fit_categories(column: str, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    values = np.asarray(values)
    if values.dtype.kind == "f" and not np.all(np.isnan(values) | (values == np.round(values))):
        raise TrainingError(f"{column} holds fractional numbers; a category column needs strings or integer codes")
    return as_categories(values)


def _fit_onehot(feature: OneHotFeature, values: npt.NDArray[Any]) -> FittedOneHot:
    if feature.categories is not None:
        return FittedOneHot(feature.column, feature.categories)
    uniques, counts = np.unique(values[values != ""], return_counts=True)
    if not len(uniques):
        raise TrainingError(f"{feature.column} has no non-empty value to learn categories from")
    # Most frequent first (ties by value), then sorted so that names stay put when frequencies shift.
    order = sorted(range(len(uniques)), key=lambda i: (-counts[i], str(uniques[i])))[: feature.max_categories]
    return FittedOneHot(feature.column, tuple(sorted(str(uniques[i]) for i in order)))
