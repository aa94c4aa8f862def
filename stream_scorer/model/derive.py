"""Features computed from input columns, declared in the feature spec (pure).

The same functions run at training (on dataset columns) and at serving (on the batch's columns, which hold
numbers as float64 with NaN for missing and categories as text with ``""`` for missing), so the two build
the same values. A :class:`Derivation` is stored in the artifact with the feature it computes.

>>> columns = {"t": np.array([6 * 3_600_000.0]), "a": np.array(["FR"]), "b": np.array(["US"])}
>>> float(derived(Derivation("sin", ("t",), period="day"), columns)[0])
1.0
>>> derived(Derivation("differ", ("a", "b")), columns).tolist()
[1.0]
>>> derived(Derivation("member", ("a",), ("FR",)), columns).tolist()
[1.0]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import Float64Array
from stream_scorer.errors import ModelArtifactError

Operation = Literal["value", "log1p", "sin", "cos", "member", "equal", "differ", "missing"]
OPERATIONS: tuple[Operation, ...] = ("value", "log1p", "sin", "cos", "member", "equal", "differ", "missing")
_NUMERIC_OPERATIONS = ("value", "log1p", "sin", "cos")
_DAY_MS = 86_400_000
# Day of week: the angle is 0 at Monday 00:00 UTC (1970-01-01 was a Thursday, three days after a Monday).
PERIODS_MS = {"day": (_DAY_MS, 0), "week": (7 * _DAY_MS, 3 * _DAY_MS)}


@dataclass(frozen=True, slots=True)
class Derivation:
    """How one feature's raw value is computed from its inputs.

    ``value`` and ``log1p`` clip a number to ``[low, high]`` (either may be None), ``log1p`` then takes
    ``log(1 + x)``; ``sin`` and ``cos`` place an epoch-millisecond time on the unit circle of its
    ``period`` (``day``: time of day; ``week``: day of week, 0 at Monday 00:00 UTC); ``member`` is 1 when
    the category is one of ``values``; ``equal`` and ``differ`` compare two category columns; ``missing``
    is 1 where the input is missing. Missing numbers stay NaN (the spec imputes them).
    """

    operation: Operation
    inputs: tuple[str, ...]
    values: tuple[str, ...] = ()
    period: str = ""
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        arity = 2 if self.operation in ("equal", "differ") else 1
        if self.operation not in OPERATIONS or len(self.inputs) != arity:
            raise ModelArtifactError(f"feature spec: {self.operation!r} of {list(self.inputs)} is not a derivation")
        if self.operation in ("sin", "cos") and self.period not in PERIODS_MS:
            raise ModelArtifactError(f"feature spec: a cyclic feature's period is day or week, not {self.period!r}")
        if self.operation == "member" and (not self.values or "" in self.values):
            raise ModelArtifactError("feature spec: a member feature needs a list of non-empty values")
        if self.low is not None and self.high is not None and not self.low <= self.high:
            raise ModelArtifactError(f"feature spec: clip bounds {self.low} > {self.high}")

    @property
    def reads_numbers(self) -> bool:
        """Whether the inputs are read as numbers (else as categories)."""
        return self.operation in _NUMERIC_OPERATIONS

    def to_dict(self) -> dict[str, Any]:
        """The manifest form; :func:`derivation_from_dict` reads it back."""
        out: dict[str, Any] = {"operation": self.operation, "inputs": list(self.inputs)}
        if self.values:
            out["values"] = list(self.values)
        if self.period:
            out["period"] = self.period
        out.update({k: v for k, v in (("low", self.low), ("high", self.high)) if v is not None})
        return out


def derivation_from_dict(d: Mapping[str, Any]) -> Derivation:
    """Read :meth:`Derivation.to_dict` back; raise :class:`ModelArtifactError` when it is malformed."""
    try:
        bounds = {k: float(d[k]) for k in ("low", "high") if k in d}
        return Derivation(
            d["operation"],
            tuple(str(c) for c in d["inputs"]),
            tuple(str(v) for v in d.get("values", ())),
            str(d.get("period", "")),
            bounds.get("low"),
            bounds.get("high"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelArtifactError(f"feature spec: a derivation lacks or mangles {exc}") from exc


def derived(d: Derivation, columns: Mapping[str, npt.NDArray[Any] | Sequence[Any]]) -> Float64Array:
    """The feature's raw values over ``columns`` (missing numbers as NaN)."""
    if d.reads_numbers:
        x = np.asarray(columns[d.inputs[0]])
        if x.dtype.kind not in "fiub":
            raise ModelArtifactError(f"{d.inputs[0]} holds {x.dtype}, not numbers; {d.operation} needs numbers")
        x = x.astype(np.float64)
        if d.operation in ("sin", "cos"):
            period, shift = PERIODS_MS[d.period]
            angle = np.mod(x + shift, period) * (2.0 * math.pi / period)
            cyclic: Float64Array = np.sin(angle) if d.operation == "sin" else np.cos(angle)
            return cyclic
        if d.low is not None or d.high is not None:
            x = np.clip(x, -np.inf if d.low is None else d.low, np.inf if d.high is None else d.high)
        if d.operation == "value":
            return x
        with np.errstate(invalid="ignore", divide="ignore"):  # below -1: NaN, imputed like a missing value
            logged: Float64Array = np.log1p(x)
        return np.where(np.isfinite(logged), logged, np.nan)
    if d.operation == "member":
        return _member(np.asarray(columns[d.inputs[0]]), d.values)
    first = as_categories(columns[d.inputs[0]])
    if d.operation == "missing":
        absent: Float64Array = np.asarray(first == "", dtype=bool).astype(np.float64)
        return absent
    second = as_categories(columns[d.inputs[1]])
    same = np.asarray(first == second, dtype=bool)
    compared: Float64Array = (same if d.operation == "equal" else ~same).astype(np.float64)
    return compared


def _member(values: npt.NDArray[Any], listed: tuple[str, ...]) -> Float64Array:
    """1.0 where the category text of ``values`` is in ``listed``. Numbers are compared as numbers: the text of a
    number is canonical (``742.0`` is ``"742"``), so a listed text that is not canonical (``"0742"``) never matches."""
    if values.dtype.kind in "fiub":
        return np.isin(values, _numbers_of(listed)).astype(np.float64)
    text = as_categories(values)
    found = text == listed[0] if len(listed) == 1 else np.isin(text, np.array(listed, dtype=object))
    return np.asarray(found, dtype=bool).astype(np.float64)


@functools.lru_cache(maxsize=256)
def _numbers_of(listed: tuple[str, ...]) -> tuple[float, ...]:
    """The listed texts that a number's canonical text can equal, as numbers (computed once per feature)."""
    return tuple(float(v) for v in listed if _is_number(v) and as_categories(np.array([float(v)]))[0] == v)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def as_categories(values: npt.NDArray[Any] | Sequence[Any]) -> npt.NDArray[Any]:
    """Category strings of a column: strings pass through; numbers become decimal strings; NaN becomes "".

    >>> as_categories(np.array([5411.0, np.nan, 0.5])).tolist(), as_categories(np.array([True, False])).tolist()
    (['5411', '', '0.5'], ['1', '0'])
    """
    values = np.asarray(values)
    kind = values.dtype.kind
    if kind in "iu":
        return values.astype(str)
    if kind == "b":
        return values.astype(np.int8).astype(str)
    if kind == "f":
        uniques, inverse = np.unique(values, return_inverse=True)
        text = ["" if math.isnan(v) else str(int(v)) if v.is_integer() else repr(v) for v in uniques.tolist()]
        return np.array(text, dtype=object)[inverse.reshape(-1)]
    return values


def category_text(value: object) -> str:
    """One configured category value as the text columns hold it (``true`` is ``"1"``, 7995 is ``"7995"``).

    >>> category_text(True), category_text(7995), category_text(5411.0), category_text("GOLD")
    ('1', '7995', '5411', 'GOLD')
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
