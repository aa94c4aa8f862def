"""Calibration maps applied to the model's logit at serving (pure); ``training.calibration`` fits them.

A :class:`Calibration` turns the raw linear output ``z = x @ w + b`` into a probability:

    none       ``p = sigmoid(z)``
    platt      ``p = sigmoid(a * z + b)``; affine in ``z``, so it can be folded into the weights
    isotonic   ``p = interp(sigmoid(z), x, y)``: piecewise linear between the knots, constant beyond them

This module imports nothing from the rest of ``stream_scorer.model``, so that the artifact can import it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import Float64Array
from stream_scorer.errors import ModelArtifactError

Method = Literal["none", "platt", "isotonic"]
_FIELDS: dict[str, frozenset[str]] = {
    "none": frozenset({"method"}),
    "platt": frozenset({"method", "a", "b"}),
    "isotonic": frozenset({"method", "x", "y"}),
}


@dataclass(frozen=True, slots=True)
class Calibration:
    """A fitted calibration map; the default is the identity (``method="none"``).

    ``a`` and ``b`` are used by ``platt`` only; the knots ``x`` (strictly increasing) and ``y``
    (non-decreasing), both probabilities, by ``isotonic`` only.
    """

    method: Method = "none"
    a: float = 1.0
    b: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    @property
    def affine(self) -> tuple[float, float] | None:
        """``(a, b)`` with calibrated ``p = sigmoid(a * z + b)``, or None when the map is not affine in ``z``."""
        if self.method == "none":
            return 1.0, 0.0
        if self.method == "platt":
            return self.a, self.b
        return None

    def fold(self, weights: Float64Array, bias: float) -> tuple[Float64Array, float] | None:
        """Fold an affine map into the linear scorer: ``(weights * a, bias * a + b)``, scored then with a plain
        sigmoid (so several models can share one weight matrix). None for ``isotonic``, which cannot be folded.

        >>> w, b = Calibration("platt", a=2.0, b=-1.0).fold(np.array([2.0, -1.0]), 0.5)
        >>> w.tolist(), b
        ([4.0, -2.0], 0.0)
        >>> Calibration("isotonic", x=(0.0, 1.0), y=(0.0, 1.0)).fold(np.array([1.0]), 0.0) is None
        True
        """
        affine = self.affine
        if affine is None:
            return None
        a, b = affine
        return weights * a, bias * a + b

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in the manifest: the method and only the parameters it uses."""
        if self.method == "platt":
            return {"method": "platt", "a": self.a, "b": self.b}
        if self.method == "isotonic":
            return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}
        return {"method": "none"}

    @staticmethod
    def from_dict(d: object) -> Calibration:
        """Read :meth:`to_dict`'s form; raise :class:`ModelArtifactError` saying what is wrong.

        >>> Calibration.from_dict({"method": "platt", "a": 1.5, "b": -0.25})
        Calibration(method='platt', a=1.5, b=-0.25, x=(), y=())
        >>> Calibration.from_dict({"method": "isotonic", "x": [0.2, 0.1], "y": [0.0, 1.0]})
        Traceback (most recent call last):
        ...
        stream_scorer.errors.ModelArtifactError: calibration: isotonic knots x must be strictly increasing
        """
        if not isinstance(d, Mapping):
            raise ModelArtifactError(f"calibration must be a JSON object, not {type(d).__name__}")
        method = d.get("method")
        if not isinstance(method, str) or method not in get_args(Method):
            raise ModelArtifactError(f"calibration: method must be one of none, platt, isotonic; got {method!r}")
        unknown = set(d) - _FIELDS[method]
        missing = _FIELDS[method] - set(d)
        if unknown or missing:
            raise ModelArtifactError(
                f"calibration {method}: expected keys {sorted(_FIELDS[method])}, "
                f"missing {sorted(missing)}, unexpected {sorted(map(str, unknown))}"
            )
        if method == "platt":
            return Calibration("platt", a=_number(d["a"], "platt a"), b=_number(d["b"], "platt b"))
        if method == "isotonic":
            return _knots(d["x"], d["y"])
        return Calibration()


def apply(cal: Calibration, logits: npt.ArrayLike) -> Float64Array:
    """Calibrated probabilities for an array of logits (any shape; the input is not mutated).

    >>> z = np.array([-2.0, 0.0, 2.0])
    >>> apply(Calibration(), z).round(4).tolist()
    [0.1192, 0.5, 0.8808]
    >>> apply(Calibration("platt", a=0.5, b=0.0), z).round(4).tolist()
    [0.2689, 0.5, 0.7311]
    >>> apply(Calibration("isotonic", x=(0.2, 0.8), y=(0.1, 0.9)), z).round(4).tolist()
    [0.1, 0.5, 0.9]
    """
    z = np.asarray(logits, dtype=np.float64)
    if cal.method == "platt":
        return sigmoid(cal.a * z + cal.b)
    if cal.method == "isotonic":
        return np.interp(sigmoid(z), cal.x, cal.y)
    return sigmoid(z)


def sigmoid(z: Float64Array) -> Float64Array:
    """The logistic function, without overflow for large ``|z|``.

    >>> sigmoid(np.array([-800.0, 0.0, 800.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    return np.exp(-np.logaddexp(0.0, -z))


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ModelArtifactError(f"calibration: {what} must be a finite number, got {value!r}")
    return float(value)


def _knots(xs: object, ys: object) -> Calibration:
    if not isinstance(xs, list | tuple) or not isinstance(ys, list | tuple):
        raise ModelArtifactError("calibration: isotonic knots x and y must be lists of numbers")
    if not xs or len(xs) != len(ys):
        raise ModelArtifactError(
            f"calibration: isotonic needs as many x as y knots (at least 1), got {len(xs)}, {len(ys)}"
        )
    x = tuple(_number(v, "isotonic knot x") for v in xs)
    y = tuple(_number(v, "isotonic knot y") for v in ys)
    if not all(0.0 <= v <= 1.0 for v in x + y):
        raise ModelArtifactError("calibration: isotonic knots must be probabilities in [0, 1]")
    if any(b <= a for a, b in itertools.pairwise(x)):
        raise ModelArtifactError("calibration: isotonic knots x must be strictly increasing")
    if any(b < a for a, b in itertools.pairwise(y)):
        raise ModelArtifactError("calibration: isotonic knots y must be non-decreasing")
    return Calibration("isotonic", x=x, y=y)
