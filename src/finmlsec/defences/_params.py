"""Parameter validation for defences, with scikit-learn's wording and finmlsec's errors.

Example:
    >>> from finmlsec.defences._params import check_int
    >>> check_int("RoundConfidence", "decimals", 2, 0, 15)
    2
    >>> check_int("RoundConfidence", "decimals", -1, 0, 15)
    Traceback (most recent call last):
    ...
    finmlsec.errors.ConfigError: The 'decimals' parameter of RoundConfidence must be an int in [0, 15]. Got -1 instead.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from finmlsec.errors import ConfigError


def _bounds(lo: float | None, hi: float | None, closed_lo: bool = True) -> str:
    left = "[" if closed_lo else "("
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    return f"{left}{lo_s}, {hi_s}]"


def check_int(owner: str, name: str, value: Any, lo: int | None = None,
              hi: int | None = None) -> int:
    """``value`` as an int within ``[lo, hi]`` (None: unbounded), else :class:`ConfigError`."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and (lo is not None and value < lo or hi is not None and value > hi):
        ok = False
    if not ok:
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be an int in {_bounds(lo, hi)}. "
            f"Got {value!r} instead."
        )
    return int(value)


def check_float(owner: str, name: str, value: Any, lo: float | None = None,
                hi: float | None = None, *, closed_lo: bool = True) -> float:
    """``value`` as a float within the interval, else :class:`ConfigError`."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        v = float(value)
        if v != v or (lo is not None and (v < lo or (v == lo and not closed_lo))) or (
            hi is not None and v > hi
        ):
            ok = False
    if not ok:
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be a float in "
            f"{_bounds(lo, hi, closed_lo)}. Got {value!r} instead."
        )
    return float(value)


def check_choice(owner: str, name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``, else :class:`ConfigError`."""
    if value not in choices:
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be one of {list(choices)}. "
            f"Got {value!r} instead."
        )
    return value
